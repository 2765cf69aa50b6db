import importlib

from django.db import migrations

# The sweep marks move from triggers (0007) to the code that creates the work
# (intent_project/announcements.py). Under Citus schema-based sharding a trigger on a
# tenant table runs on the worker node holding the schema, where the coordinator's
# public.tenants_sweepmark does not exist (docs/scaling.md, "Audit"). Runs in every
# tenant schema and the template; going back restores the triggers.
_0007 = importlib.import_module("projections_app.migrations.0007_sweep_marks")


class Migration(migrations.Migration):
    dependencies = [("projections_app", "0007_sweep_marks")]

    operations = [migrations.RunSQL(_0007.BACKWARD, _0007.FORWARD)]
