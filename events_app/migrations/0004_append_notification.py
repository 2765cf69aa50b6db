from django.db import migrations

# Live streams (intent_project/streams.py) are woken when events are appended: a statement
# trigger queues `NOTIFY intent_final, '<schema>:events'` for every INSERT (or COPY) into
# the log, delivered when the appending transaction commits, i.e. exactly when the events
# become visible. PostgreSQL folds identical notifications of one transaction into one, so
# a command batch appending hundreds of events sends one. Every writer of the log is
# covered, whatever code path appends; copied tenants get the trigger with the template.
FORWARD = """
CREATE OR REPLACE FUNCTION events_app_event_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intent_final', TG_TABLE_SCHEMA || ':events');
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_app_event_appended
    AFTER INSERT ON events_app_event
    FOR EACH STATEMENT EXECUTE FUNCTION events_app_event_appended();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS events_app_event_appended ON events_app_event;
DROP FUNCTION IF EXISTS events_app_event_appended();
"""


class Migration(migrations.Migration):
    dependencies = [("events_app", "0003_events_refuse_truncate")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
