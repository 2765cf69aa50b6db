from django.db import migrations

# Events are facts: the database itself refuses to change or delete one, whatever code
# (admin, shell, a buggy migration) tries. Rebuilds and upcasting only ever read them.
# Dropping a tenant drops its schema, which no row trigger stands in the way of.
FORWARD = """
CREATE OR REPLACE FUNCTION events_app_event_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on events_app_event is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_app_event_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events_app_event
    FOR EACH ROW EXECUTE FUNCTION events_app_event_immutable();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS events_app_event_no_update_or_delete ON events_app_event;
DROP FUNCTION IF EXISTS events_app_event_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("events_app", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
