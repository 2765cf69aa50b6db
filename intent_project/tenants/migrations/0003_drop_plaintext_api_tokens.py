"""API tokens moved to django-rest-knox (hashed, expiring). The old rest_framework.authtoken
table kept every token in clear text; drop it where it exists, so no usable key stays
behind in a database, a backup or a replica."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_alter_membership_role"),
    ]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS public.authtoken_token CASCADE", migrations.RunSQL.noop),
    ]
