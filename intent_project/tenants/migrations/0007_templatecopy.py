import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0006_sweepmark'),
    ]

    operations = [
        migrations.CreateModel(
            name='TemplateCopy',
            fields=[
                ('template', models.CharField(max_length=63, primary_key=True, serialize=False)),
                ('key', models.TextField()),
                ('program', models.TextField()),
                ('verified_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
        ),
    ]
