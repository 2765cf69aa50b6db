import importlib

from django.db import migrations

# The append notification moves from the log's trigger (0004) to the code that appends
# (intent_project/announcements.py: the store, the bulk and tenant imports). Under Citus
# schema-based sharding the trigger would fire on the worker node holding the schema, and
# its NOTIFY would reach only that node's listeners, never the web processes on the
# coordinator (docs/scaling.md, "Audit"). Runs in every tenant schema and the template,
# like every tenant migration; going back restores the trigger.
_0004 = importlib.import_module("events_app.migrations.0004_append_notification")


class Migration(migrations.Migration):
    dependencies = [("events_app", "0005_subject_keys")]

    operations = [migrations.RunSQL(_0004.BACKWARD, _0004.FORWARD)]
