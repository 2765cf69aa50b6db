from django.db import migrations

# 0002's row triggers do not fire on TRUNCATE, which empties the table in one statement;
# a statement-level trigger refuses it too (same function: it raises for any TG_OP).
#
# Triggers are a wall only against a role that is not a superuser: a superuser may
# `SET session_replication_role = replica`, which skips ordinary triggers, and the app
# would then be one SQL injection away from rewriting history. The app therefore runs as
# a role without superuser (README, "Running in production"; devenv/ makes one).
FORWARD = """
CREATE TRIGGER events_app_event_no_truncate
    BEFORE TRUNCATE ON events_app_event
    FOR EACH STATEMENT EXECUTE FUNCTION events_app_event_immutable();
"""

BACKWARD = "DROP TRIGGER IF EXISTS events_app_event_no_truncate ON events_app_event;"


class Migration(migrations.Migration):
    dependencies = [("events_app", "0002_events_are_immutable")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
