import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0005_tenant_suspended'),
    ]

    operations = [
        migrations.CreateModel(
            name='SweepMark',
            fields=[
                ('schema_name', models.CharField(max_length=63, primary_key=True, serialize=False)),
                ('marked_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
        ),
    ]
