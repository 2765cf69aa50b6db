"""New tenants are copied from a migrated template, and the copy equals a migrated schema."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context, schema_exists

from commands_app import processing
from events_app.models import Event
from intent_project.tenants import template as copying
from intent_project.tenants.models import Domain, TemplateCopy, Tenant
from intent_project.tenants.services import _migrations_on_disk, create_tenant, prepare_template
from projections_app.drift import check_schema, reference_catalog
from projections_app.schemas import catalog
from tests.integration.helpers import submit

TEMPLATE = settings.TENANT_TEMPLATE_SCHEMA


def q(name: str) -> str:
    return connection.ops.quote_name(name)


def fetch(sql: str, params: list[object] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _migrations(schema):
    return set(fetch(f"SELECT app, name FROM {q(schema)}.django_migrations"))


def _new(prefix: str, *, copy: bool = True, settings=None) -> Tenant:
    if settings is not None:
        settings.TENANT_CLONE_FROM_TEMPLATE = copy
    tenant = create_tenant(prefix + uuid.uuid4().hex[:12], prefix)
    connection.set_schema_to_public()
    return tenant


def _constraint_names(schema: str) -> set[tuple[str, str]]:
    return set(
        fetch(
            "SELECT r.relname, k.conname FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = %s",
            [schema],
        )
    )


def _functions(schema: str) -> set[str]:
    return {
        name
        for (name,) in fetch(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
            [schema],
        )
    }


def _sequence_state(schema: str, sequence: str) -> tuple[int, bool]:
    return fetch(f"SELECT last_value, is_called FROM {q(schema)}.{q(sequence)}")[0]


def test_a_copied_tenant_equals_a_migrated_one(live_db, settings):
    copied = _new("c", settings=settings)
    migrated = _new("m", copy=False, settings=settings)

    assert catalog(copied.schema_name) == catalog(migrated.schema_name)
    assert catalog(copied.schema_name)["events_app_event"]["triggers"] == {
        "events_app_event_no_update_or_delete",
        "events_app_event_no_truncate",
    }
    # Every name, column default, constraint, index, sequence, trigger and function
    # definition, not only what catalog() compares.
    assert copying.differences(migrated.schema_name, copied.schema_name) == []
    assert _constraint_names(copied.schema_name) == _constraint_names(migrated.schema_name)
    assert ("events_app_event", "event_stream_version_unique") in _constraint_names(copied.schema_name)
    assert (
        _functions(copied.schema_name)
        == _functions(migrated.schema_name)
        >= {
            "events_app_event_immutable",
        }
    )
    # The append notification and the sweep marks come from the code (events_app 0006,
    # projections_app 0008): no trigger function of theirs is left in a tenant.
    assert not _functions(copied.schema_name) & {"events_app_event_appended", "intent_sweep_mark"}
    assert _migrations(copied.schema_name) == _migrations(migrated.schema_name)
    with reference_catalog() as reference:
        assert check_schema(copied.schema_name, reference) == []


def test_a_copied_tenant_works_with_sequences_of_its_own(live_db, settings):
    first, second = _new("w", settings=settings), _new("w", settings=settings)

    for tenant in (first, second):
        cmd = submit(tenant, "logMessage", {"message": f"hello {tenant.slug}"})
        with schema_context(tenant.schema_name):
            assert processing.process(cmd.id) == "consumed"
            positions = list(Event.objects.order_by("position").values_list("position", flat=True))
        connection.set_schema_to_public()
        # Fresh positions in each copy, not carried on from the template or the other copy.
        assert positions[0] == 1 and positions == list(range(1, len(positions) + 1))
    # Appending in the copies moved neither the template's sequence nor each other's.
    assert _sequence_state(TEMPLATE, "events_app_event_position_seq") == (1, False)
    with schema_context(first.schema_name):
        cmd = submit(first, "logMessage", {"message": "once more"})
        assert processing.process(cmd.id) == "consumed"
    connection.set_schema_to_public()
    assert (
        _sequence_state(first.schema_name, "events_app_event_position_seq")[0]
        > _sequence_state(second.schema_name, "events_app_event_position_seq")[0]
    )
    # The migration history was copied with its ids, and its sequence carries on after them:
    # the next migration applied in the tenant gets a free id.
    assert _sequence_state(first.schema_name, "django_migrations_id_seq") == _sequence_state(
        TEMPLATE, "django_migrations_id_seq"
    )
    with transaction.atomic():
        fetch(
            f"INSERT INTO {q(first.schema_name)}.django_migrations (app, name, applied) "
            "VALUES ('x', 'y', now()) RETURNING id"
        )
        transaction.set_rollback(True)
    # The immutability triggers hold in the copy.
    with pytest.raises(Exception, match="events are immutable"), transaction.atomic():
        fetch(f"UPDATE {q(first.schema_name)}.events_app_event SET type = 'x'")


def test_the_copy_follows_a_migration_unapplied_and_reapplied_in_the_template(live_db, settings):
    _new("k", settings=settings)  # the program is compiled and cached
    before = copying._programs[TEMPLATE].key
    # Unapplying 0006 puts the log's old notification trigger back in the template.
    call_command(
        "migrate_schemas", "events_app", "0005", schema_name=TEMPLATE, interactive=False, verbosity=0
    )
    connection.set_schema_to_public()
    assert "events_app_event_appended" in _functions(TEMPLATE)

    # create_tenant migrates the template again, and the copy is compiled from it anew, by
    # a fresh process too: the stored program is of the template before.
    copying._programs.clear()
    tenant = _new("k", settings=settings)
    assert "events_app_event_appended" not in _functions(TEMPLATE)
    assert copying._programs[TEMPLATE].key != before
    assert TemplateCopy.objects.get(template=TEMPLATE).key == copying._stored_key(copying._programs[TEMPLATE].key)
    assert "events_app_event_appended" not in catalog(tenant.schema_name)["events_app_event"]["triggers"]
    assert _migrations(tenant.schema_name) == _migrations(TEMPLATE)
    assert copying.differences(TEMPLATE, tenant.schema_name) == []


@contextlib.contextmanager
def template_altered(do: list[str], undo: list[str]) -> Iterator[None]:
    with connection.cursor() as cursor:
        for statement in do:
            cursor.execute(statement.format(t=q(TEMPLATE)))
    try:
        yield
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            for statement in undo:
                cursor.execute(statement.format(t=q(TEMPLATE)))


def test_the_copy_follows_a_column_added_to_the_template_and_removed_again(live_db, settings):
    _new("a", settings=settings)  # cached
    with template_altered(
        ["ALTER TABLE {t}.projections_app_systemstatus ADD COLUMN note text NOT NULL DEFAULT 'n/a'"],
        ["ALTER TABLE {t}.projections_app_systemstatus DROP COLUMN IF EXISTS note"],
    ):
        added = _new("a", settings=settings)
        assert catalog(added.schema_name)["projections_app_systemstatus"]["columns"]["note"] == ("text", True)
    removed = _new("a", settings=settings)
    assert "note" not in catalog(removed.schema_name)["projections_app_systemstatus"]["columns"]
    assert copying.differences(TEMPLATE, removed.schema_name) == []


def test_functions_triggers_keys_sequences_comments_and_rows_of_the_template_are_copied(live_db, settings):
    """Whatever a migration may add to a tenant schema (a trigger function writing into a
    public table, foreign keys, a serial, comments, a seeded row) comes with the copy."""
    tenants_table = Tenant._meta.db_table
    pk_type = Tenant._meta.pk.db_type(connection)
    _new("g", settings=settings)  # cached before the template changes
    with template_altered(
        [
            "CREATE TABLE public.intent_test_marks (schema_name text, at timestamptz DEFAULT now())",
            """CREATE FUNCTION {t}.intent_test_mark() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO public.intent_test_marks (schema_name) VALUES (TG_TABLE_SCHEMA);
               RETURN NULL; END $$""",
            "CREATE TRIGGER intent_test_marked AFTER INSERT ON {t}.projections_app_systemmetrics "
            "FOR EACH STATEMENT EXECUTE FUNCTION {t}.intent_test_mark()",
            "COMMENT ON FUNCTION {t}.intent_test_mark() IS 'marks the schema'",
            "COMMENT ON TABLE {t}.projections_app_systemmetrics IS 'per scope'",
            "COMMENT ON COLUMN {t}.projections_app_systemmetrics.scope IS 'the scope'",
            f"ALTER TABLE {{t}}.projections_app_systemmetrics ADD COLUMN tenant_ref {pk_type} "
            f"CONSTRAINT intent_test_tenant_fk REFERENCES public.{tenants_table}(id)",
            "ALTER TABLE {t}.projections_app_statementline ADD CONSTRAINT intent_test_account_fk "
            "FOREIGN KEY (account_id) REFERENCES {t}.projections_app_accountbalance (account_id) "
            "DEFERRABLE INITIALLY DEFERRED",
            "ALTER TABLE {t}.projections_app_systemmetrics ADD COLUMN serial_no serial",
            "INSERT INTO {t}.projections_app_systemmetrics (scope, test_count, failed_test_count, "
            "message_count, last_position, updated_at) VALUES ('seeded', 0, 0, 0, 0, now())",
        ],
        [
            "DELETE FROM {t}.projections_app_systemmetrics WHERE scope = 'seeded'",
            "DROP TRIGGER IF EXISTS intent_test_marked ON {t}.projections_app_systemmetrics",
            "DROP FUNCTION IF EXISTS {t}.intent_test_mark()",
            "DROP TABLE IF EXISTS public.intent_test_marks",
            "COMMENT ON TABLE {t}.projections_app_systemmetrics IS NULL",
            "COMMENT ON COLUMN {t}.projections_app_systemmetrics.scope IS NULL",
            "ALTER TABLE {t}.projections_app_systemmetrics DROP COLUMN IF EXISTS tenant_ref",
            "ALTER TABLE {t}.projections_app_systemmetrics DROP COLUMN IF EXISTS serial_no",
            "ALTER TABLE {t}.projections_app_statementline DROP CONSTRAINT IF EXISTS intent_test_account_fk",
        ],
    ):
        tenant = _new("g", settings=settings)
        schema = q(tenant.schema_name)
        # The self-check passed (or create_tenant would have raised); say what it covered.
        assert copying.differences(TEMPLATE, tenant.schema_name) == []
        assert "intent_test_mark" in _functions(tenant.schema_name)
        names = _constraint_names(tenant.schema_name)
        assert {
            ("projections_app_systemmetrics", "intent_test_tenant_fk"),
            ("projections_app_statementline", "intent_test_account_fk"),
        } <= names
        assert fetch(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE t.tgname = 'intent_test_marked' "
            "AND t.tgrelid = %s::regclass",
            [f"{tenant.schema_name}.projections_app_systemmetrics"],
        )[0][0].endswith(f"EXECUTE FUNCTION {tenant.schema_name}.intent_test_mark()")
        # The seeded row was copied, and the copied trigger did not fire for it.
        assert fetch(f"SELECT scope FROM {schema}.projections_app_systemmetrics") == [("seeded",)]
        marks = "SELECT count(*) FROM public.intent_test_marks WHERE schema_name = %s"
        assert fetch(marks, [tenant.schema_name]) == [(0,)]
        # The serial's sequence is the copy's own, owned by its column, carried on from the
        # template's (the seeded row took 1).
        default = fetch(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
            "ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = %s::regclass "
            "AND a.attname = 'serial_no'",
            [f"{tenant.schema_name}.projections_app_systemmetrics"],
        )[0][0]
        assert tenant.schema_name in default and TEMPLATE not in default
        assert fetch(
            "SELECT pg_get_serial_sequence(%s, 'serial_no')",
            [f"{tenant.schema_name}.projections_app_systemmetrics"],
        )[0][0].startswith(tenant.schema_name + ".")
        # The trigger writes into the public table from the copy, naming the copy.
        with transaction.atomic():
            fetch(
                f"INSERT INTO {schema}.projections_app_systemmetrics (scope, test_count, failed_test_count, "
                "message_count, last_position, updated_at) VALUES ('live', 0, 0, 0, 0, now()) RETURNING serial_no"
            )
        assert fetch(marks, [tenant.schema_name]) == [(1,)]
        assert fetch(f"SELECT serial_no FROM {schema}.projections_app_systemmetrics ORDER BY 1") == [
            (1,),
            (2,),
        ]
        assert fetch(f"SELECT obj_description({schema_literal(tenant)}::regclass, 'pg_class')") == [
            ("per scope",)
        ]
    # The template is as before, and so is the next copy.
    after = _new("g", settings=settings)
    assert copying.differences(TEMPLATE, after.schema_name) == []
    assert fetch(f"SELECT count(*) FROM {q(after.schema_name)}.projections_app_systemmetrics") == [(0,)]


def schema_literal(tenant: Tenant) -> str:
    return f"'{tenant.schema_name}.projections_app_systemmetrics'"


def _nothing_left(slug: str) -> None:
    connection.set_schema_to_public()
    assert not Tenant.objects.filter(slug=slug).exists()
    assert not Domain.objects.filter(domain=slug).exists()
    assert not schema_exists("t_" + slug)


def test_a_copy_that_differs_from_the_template_is_refused_and_leaves_nothing(live_db, settings, monkeypatch):
    settings.TENANT_CLONE_FROM_TEMPLATE = True
    copying.forget_programs()
    # Without the renames the copy keeps the names LIKE chose: the self-check must see it.
    monkeypatch.setattr(copying, "_renames", lambda template, target: [])
    slug = "r" + uuid.uuid4().hex[:12]
    with pytest.raises(copying.TemplateCopyError, match="event_stream_version_unique"):
        create_tenant(slug, "refused")
    _nothing_left(slug)
    assert TEMPLATE not in copying._programs  # nothing cached from a refused copy
    assert not TemplateCopy.objects.exists()  # nor stored


def test_a_copy_failing_halfway_leaves_nothing(live_db, settings):
    _new("h", settings=settings)
    program = copying._programs[TEMPLATE]
    broken = dataclasses.replace(program, finish=(*program.finish, "SELECT 1 / 0"))
    copying._programs[TEMPLATE] = broken
    slug = "h" + uuid.uuid4().hex[:12]
    try:
        with pytest.raises(Exception, match="division by zero"):
            create_tenant(slug, "halfway")
    finally:
        copying._programs[TEMPLATE] = program
    _nothing_left(slug)


def test_creations_on_one_connection_repeat_the_same_statements(live_db, settings):
    """django-tenants' clone re-created large PL/pgSQL functions in the session on every
    call and each call got slower; the copy issues the same few statements every time,
    none of them creating anything outside the new schema (figures: docs/benchmarks.md)."""
    _new("s", settings=settings)
    counts = []
    for _ in range(4):
        with CaptureQueriesContext(connection) as queries:
            tenant = _new("s", settings=settings)
        statements = [q_["sql"] for q_ in queries.captured_queries]
        counts.append(len(statements))
        created = re.findall(r"CREATE (?:OR REPLACE )?FUNCTION (\S+?)\(", "\n".join(statements))
        assert created and all(name.startswith(f'"{tenant.schema_name}".') for name in created), created
    assert len(set(counts)) == 1, counts


def test_migrate_tenants_skips_current_schemas_and_migrates_stale_ones(fresh_tenant, capsys):
    call_command("migrate_tenants", "--tenant", fresh_tenant.slug)
    assert "1 current, 0 to migrate" in capsys.readouterr().out
    # Unapply the projections_app migrations after 0003 in this schema only.
    call_command(
        "migrate_schemas",
        "projections_app",
        "0003_rebuilds",
        schema_name=fresh_tenant.schema_name,
        interactive=False,
        verbosity=0,
    )
    capsys.readouterr()
    call_command("migrate_tenants", "--tenant", fresh_tenant.slug)
    out = capsys.readouterr().out
    assert "0 current, 1 to migrate" in out
    assert int(re.search(r": (\d+) migration\(s\) applied", out).group(1)) >= 1
    with reference_catalog() as reference:
        # Tables, columns and migrations are whole again.
        assert check_schema(fresh_tenant.schema_name, reference) == []


def _compiling(statements: list[str]) -> list[str]:
    """The statements that read the template's definitions (compiling) or compare a copy."""
    return [s for s in statements if "pg_get_functiondef" in s or "pg_get_constraintdef" in s]


def test_a_fresh_process_copies_with_the_stored_program_without_compiling_or_checking(live_db, settings):
    first = _new("p", settings=settings)
    stored = TemplateCopy.objects.get(template=TEMPLATE)
    assert stored.key == copying._stored_key(copying.cache_key(TEMPLATE))
    assert copying.differences(TEMPLATE, first.schema_name) == []

    copying._programs.clear()  # what a new process starts with
    with CaptureQueriesContext(connection) as queries:
        tenant = _new("p", settings=settings)
    statements = [q_["sql"] for q_ in queries.captured_queries]
    assert _compiling(statements) == [], "compiled or checked again"
    assert any("tenants_templatecopy" in s for s in statements)
    assert copying.differences(TEMPLATE, tenant.schema_name) == []
    assert catalog(tenant.schema_name) == catalog(first.schema_name)
    # The process keeps the loaded program: its next copy asks the table no more.
    with CaptureQueriesContext(connection) as queries:
        _new("p", settings=settings)
    assert not any("tenants_templatecopy" in q_["sql"] for q_ in queries.captured_queries)


def test_a_stored_program_that_fails_leaves_nothing_and_is_not_kept(live_db, settings):
    _new("f", settings=settings)
    stored = TemplateCopy.objects.get(template=TEMPLATE)
    data = json.loads(stored.program)
    TemplateCopy.objects.filter(pk=TEMPLATE).update(
        program=json.dumps({**data, "finish": [*data["finish"], "SELECT 1 / 0"]})
    )
    copying._programs.clear()
    slug = "f" + uuid.uuid4().hex[:12]
    try:
        with pytest.raises(Exception, match="division by zero"):
            create_tenant(slug, "stored and broken")
        assert TEMPLATE not in copying._programs  # not trusted from memory after failing
    finally:
        copying.forget_programs()
    _nothing_left(slug)


def test_migrate_tenants_prepares_the_program_so_the_first_creation_after_a_deploy_loads_it(
    live_db, settings, capsys
):
    _new("m", settings=settings)  # the template exists
    copying.forget_programs()  # as after a migration of the template
    capsys.readouterr()
    call_command("migrate_tenants")
    assert "template copy program compiled and checked" in capsys.readouterr().out
    assert TemplateCopy.objects.get(template=TEMPLATE).key == copying._stored_key(copying.cache_key(TEMPLATE))
    assert not schema_exists(copying.PROBE_SCHEMA)  # the checked copy was rolled back
    call_command("migrate_tenants")
    assert "compiled" not in capsys.readouterr().out  # stored already: nothing to do

    copying._programs.clear()  # a new web process, after the deploy
    with CaptureQueriesContext(connection) as queries:
        tenant = _new("m", settings=settings)
    assert _compiling([q_["sql"] for q_ in queries.captured_queries]) == []
    assert copying.differences(TEMPLATE, tenant.schema_name) == []


def test_a_deploy_time_check_that_fails_stores_nothing_and_leaves_no_probe(live_db, settings, monkeypatch):
    _new("m", settings=settings)
    copying.forget_programs()
    monkeypatch.setattr(copying, "_renames", lambda template, target: [])
    with pytest.raises(copying.TemplateCopyError, match="event_stream_version_unique"):
        prepare_template()
    assert not TemplateCopy.objects.exists()
    assert not schema_exists(copying.PROBE_SCHEMA)
    assert TEMPLATE not in copying._programs


def test_the_quick_template_check_finds_the_migrations_django_finds():
    """ensure_template trusts the template when every migration file is recorded in it;
    the files are listed without importing them, so the list must be Django's own."""
    assert _migrations_on_disk() == set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
