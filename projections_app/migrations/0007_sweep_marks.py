from django.db import migrations

# The sweep visits only the tenant schemas marked in public.tenants_sweepmark
# (intent_project/sweep_marks.py); these triggers set the mark whenever something creates
# work it watches, whatever code path (bus, worker, operator, import, psql) does it:
# - a command inserted, or set back to pending (an operator's retry);
# - events appended: the projections are behind until they catch up;
# - a checkpoint created (a new projection), its status changed (stalled, resumed), its
#   version changed (a rebuild's swap) or its position moved back (a rewind);
# - a dead letter recorded or replayed (the /metrics figures change).
#
# The mark is one row per schema, inserted with ON CONFLICT DO NOTHING: when it already
# exists (a busy tenant) the trigger costs an index probe and writes nothing. The shared
# advisory lock, held until the writer commits, is what makes removing a mark safe: the
# sweep removes one only under the exclusive lock of the same key and after re-checking
# the tenant's rows (sweep_marks.release), so a writer that relied on an existing mark is
# either committed and seen by that re-check, or still holds the lock and the mark stays.
#
# Statement-level where every statement means work (inserts of commands and events, COPY
# included: one call per statement, not per row); row-level with a WHEN clause where only
# some updates do, so the hot paths (a command consumed, a checkpoint advanced, the
# sweep's own swept_at) never call the function. TG_TABLE_SCHEMA names the tenant. The
# function lives in each tenant schema, so cloned tenants get it with the template.
FORWARD = """
CREATE OR REPLACE FUNCTION intent_sweep_mark() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('intent_sweep_mark'), hashtext(TG_TABLE_SCHEMA));
    INSERT INTO public.tenants_sweepmark (schema_name, marked_at)
         VALUES (TG_TABLE_SCHEMA, clock_timestamp())
    ON CONFLICT (schema_name) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER intent_sweep_mark_command_inserted
    AFTER INSERT ON commands_app_command
    FOR EACH STATEMENT EXECUTE FUNCTION intent_sweep_mark();
CREATE TRIGGER intent_sweep_mark_command_pending
    AFTER UPDATE ON commands_app_command
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status IS DISTINCT FROM 'pending')
    EXECUTE FUNCTION intent_sweep_mark();
CREATE TRIGGER intent_sweep_mark_events_appended
    AFTER INSERT ON events_app_event
    FOR EACH STATEMENT EXECUTE FUNCTION intent_sweep_mark();
CREATE TRIGGER intent_sweep_mark_checkpoint_created
    AFTER INSERT ON projections_app_projectionstate
    FOR EACH ROW EXECUTE FUNCTION intent_sweep_mark();
CREATE TRIGGER intent_sweep_mark_checkpoint_changed
    AFTER UPDATE ON projections_app_projectionstate
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status
        OR OLD.version IS DISTINCT FROM NEW.version
        OR NEW.position < OLD.position
    )
    EXECUTE FUNCTION intent_sweep_mark();
CREATE TRIGGER intent_sweep_mark_dead_letters
    AFTER INSERT OR UPDATE ON projections_app_deadletter
    FOR EACH STATEMENT EXECUTE FUNCTION intent_sweep_mark();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS intent_sweep_mark_command_inserted ON commands_app_command;
DROP TRIGGER IF EXISTS intent_sweep_mark_command_pending ON commands_app_command;
DROP TRIGGER IF EXISTS intent_sweep_mark_events_appended ON events_app_event;
DROP TRIGGER IF EXISTS intent_sweep_mark_checkpoint_created ON projections_app_projectionstate;
DROP TRIGGER IF EXISTS intent_sweep_mark_checkpoint_changed ON projections_app_projectionstate;
DROP TRIGGER IF EXISTS intent_sweep_mark_dead_letters ON projections_app_deadletter;
DROP FUNCTION IF EXISTS intent_sweep_mark();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("projections_app", "0006_transfer_currency_null"),
        ("events_app", "0005_subject_keys"),
        ("commands_app", "0005_command_created_index"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
