"""New tenants are cloned from a migrated template, and the clone equals a migrated schema."""

from __future__ import annotations

import re
import uuid

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from intent_project.tenants.services import create_tenant
from projections_app.drift import check_schema, reference_catalog
from projections_app.schemas import catalog


def _migrations(schema):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(schema)}.django_migrations")
        return set(cursor.fetchall())


def test_a_cloned_tenant_equals_a_migrated_one(live_db, settings):
    settings.TENANT_CLONE_FROM_TEMPLATE = True
    cloned = create_tenant("c" + uuid.uuid4().hex[:12], "cloned")
    settings.TENANT_CLONE_FROM_TEMPLATE = False
    migrated = create_tenant("m" + uuid.uuid4().hex[:12], "migrated")
    connection.set_schema_to_public()
    assert catalog(cloned.schema_name) == catalog(migrated.schema_name)
    assert catalog(cloned.schema_name)["events_app_event"]["triggers"] >= {
        "events_app_event_no_update_or_delete",
        "events_app_event_no_truncate",
    }
    assert _migrations(cloned.schema_name) == _migrations(migrated.schema_name)
    with reference_catalog() as reference:
        assert check_schema(cloned.schema_name, reference) == []
    # The clone works: events append with fresh positions, checkpoints exist.
    from commands_app import processing
    from tests.integration.helpers import submit

    cmd = submit(cloned, "logMessage", {"message": "hello clone"})
    with schema_context(cloned.schema_name):
        assert processing.process(cmd.id) == "consumed"


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


def _function_creations(create) -> int:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        create()
    connection.set_schema_to_public()
    return sum("CREATE OR REPLACE FUNCTION" in q["sql"] for q in queries.captured_queries)


def test_the_clone_functions_are_created_once_per_database_session_and_again_after_a_rollback(
    live_db, settings
):
    """Re-created on every clone, their compiled copies pile up in the session's memory and
    each clone gets slower (services._Clone)."""
    from django.db import transaction

    settings.TENANT_CLONE_FROM_TEMPLATE = True
    connection.close()  # a new session: nothing created in it yet
    first = _function_creations(lambda: create_tenant("f" + uuid.uuid4().hex[:12], "first"))
    again = _function_creations(lambda: create_tenant("f" + uuid.uuid4().hex[:12], "again"))
    assert first > 0 and again == 0

    connection.close()

    def rolled_back() -> None:
        with transaction.atomic():
            create_tenant("r" + uuid.uuid4().hex[:12], "rolled back")
            transaction.set_rollback(True)

    assert _function_creations(rolled_back) > 0
    after = _function_creations(lambda: create_tenant("a" + uuid.uuid4().hex[:12], "after"))
    # Not remembered from a transaction that rolled back (in a fresh database it would have
    # taken the functions with it): created again.
    assert after > 0
