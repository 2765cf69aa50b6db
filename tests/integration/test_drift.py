"""Drift per tenant schema: damage one tenant, check finds it, repair fixes it, others untouched."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django_tenants.utils import schema_context

from projections_app.drift import check_schema, reference_catalog
from projections_app.models import ProjectionState, SystemStatus
from projections_app.runner import run_all
from tests.integration.helpers import at_once, submit


def _findings(tenant):
    with reference_catalog() as reference:
        return check_schema(tenant.schema_name, reference)


def _sql(tenant, statement):
    with connection.cursor() as cursor:
        cursor.execute(statement.format(schema=connection.ops.quote_name(tenant.schema_name)))


@pytest.fixture
def projected(fresh_tenant):
    from commands_app import processing

    for message in ("one", "two"):
        cmd = submit(fresh_tenant, "logMessage", {"message": message})
        with schema_context(fresh_tenant.schema_name):
            processing.process(cmd.id)
    with schema_context(fresh_tenant.schema_name):
        run_all()
    return fresh_tenant


def _repair(tenant, capsys, *, resolves=True):
    if resolves:
        call_command("repair_projections", "--tenant", tenant.slug)
    else:
        with pytest.raises(SystemExit) as exit_:
            call_command("repair_projections", "--tenant", tenant.slug)
        assert exit_.value.code == 1  # what it could not fix makes it fail, for CI
    return capsys.readouterr().out


def test_a_new_tenant_is_clean(fresh_tenant):
    assert _findings(fresh_tenant) == []


def test_a_dropped_column_is_found_and_repaired_by_a_rebuild(projected, world, capsys):
    _sql(projected, "ALTER TABLE {schema}.projections_app_systemstatus DROP COLUMN messages_logged")
    findings = _findings(projected)
    assert [(f.kind, f.projection, f.table) for f in findings] == [
        ("missing_column", "system_status", "projections_app_systemstatus")
    ]
    assert _findings(world.globex) == []  # another tenant is not affected
    call_command("repair_projections", "--tenant", projected.slug, "--dry-run")
    assert f"plan   {projected.slug}: rebuild system_status" in capsys.readouterr().out
    assert _findings(projected) != []  # the dry run changed nothing
    assert "rebuild system_status" in _repair(projected, capsys)
    assert _findings(projected) == []
    with schema_context(projected.schema_name):
        assert sum(SystemStatus.objects.values_list("messages_logged", flat=True)) == 2


def test_a_missing_index_is_found_and_repaired(projected, capsys):
    _sql(projected, "DROP INDEX {schema}.event_type_position")
    assert [f.kind for f in _findings(projected)] == ["missing_index"]
    out = _repair(projected, capsys, resolves=False)
    # The event log is not a read model: a rebuild cannot restore its index, so repair
    # says so instead of pretending.
    assert "manual" in out and "event_type_position" in out
    _sql(projected, 'CREATE INDEX event_type_position ON {schema}.events_app_event ("type", "position")')
    assert _findings(projected) == []


def test_a_read_model_that_lost_its_indexes_is_rebuilt_with_them(projected, capsys):
    _sql(
        projected,
        "ALTER TABLE {schema}.projections_app_systemmetrics DROP CONSTRAINT projections_app_systemmetrics_pkey",
    )
    assert {(f.kind, f.projection) for f in _findings(projected)} >= {("missing_index", "system_metrics")}
    _repair(projected, capsys)
    assert _findings(projected) == []


def test_a_stale_fingerprint_is_found_and_rebuilt(projected, capsys):
    with schema_context(projected.schema_name):
        ProjectionState.objects.filter(name="system_metrics").update(fingerprint="stale")
    assert [(f.kind, f.projection) for f in _findings(projected)] == [("code_changed", "system_metrics")]
    _repair(projected, capsys)
    assert _findings(projected) == []


def test_an_unapplied_migration_is_found_and_applied(projected, capsys):
    # Unapply the projections_app migrations after 0003 in this schema only, as if they
    # never ran there (tables and columns they added are gone too).
    call_command(
        "migrate_schemas",
        "projections_app",
        "0003_rebuilds",
        schema_name=projected.schema_name,
        interactive=False,
        verbosity=0,
    )
    kinds = {f.kind for f in _findings(projected)}
    assert {"unapplied_migration", "missing_table", "missing_column"} <= kinds
    out = _repair(projected, capsys)
    assert "migrate_schemas" in out
    assert _findings(projected) == []


def test_a_gap_in_the_migration_history_is_reported_for_a_human(projected, capsys):
    # A later migration recorded, an earlier one not: Django cannot migrate past that.
    _sql(
        projected,
        "DELETE FROM {schema}.django_migrations WHERE app = 'projections_app' AND name = '0003_rebuilds'",
    )
    assert "unapplied_migration" in {f.kind for f in _findings(projected)}
    out = _repair(projected, capsys, resolves=False)
    assert "manual" in out and "0003_rebuilds" in out
    _sql(
        projected,
        "INSERT INTO {schema}.django_migrations (app, name, applied)"
        " VALUES ('projections_app', '0003_rebuilds', now())",
    )
    assert _findings(projected) == []


def test_check_projections_exits_non_zero_with_a_json_report(projected, capsys):
    _sql(projected, "CREATE TABLE {schema}.stray (id int)")
    with pytest.raises(SystemExit) as exit_:
        call_command("check_projections", "--tenant", projected.slug, "--json")
    assert exit_.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["drifted"] == [projected.slug]
    assert report["tenants"][projected.slug][0]["kind"] == "extra_table"
    _sql(projected, "DROP TABLE {schema}.stray")
    call_command("check_projections", "--tenant", projected.slug)
    assert "1 clean, 0 drifted" in capsys.readouterr().out


def test_twelve_drift_checks_at_once_all_succeed_and_leave_no_scratch_schema(live_db, world):
    """The admin action, twelve times at once (threads, each its own connection): each run
    builds its reference tables in a scratch schema of its own and drops it afterwards."""

    before = _scratch_schemas()
    answers: list[tuple[int, str]] = []

    def check() -> None:
        client = Client(raise_request_exception=False)
        client.force_login(world["ada"].user)
        response = client.post(
            "/t/acme/admin/projections_app/projectionstate/",
            {"action": "check_drift", "_selected_action": ["system_status"]},
            follow=True,
        )
        answers.append((response.status_code, response.content.decode()))

    at_once(12, check)

    assert [status for status, _ in answers] == [200] * 12
    assert all("No drift" in body for _, body in answers)
    assert _scratch_schemas() == before


def _scratch_schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'intent\\_rb\\_%'")
        return {name for (name,) in cursor.fetchall()}


def test_a_drift_check_that_fails_leaves_no_scratch_schema(live_db):
    before = _scratch_schemas()

    with pytest.raises(RuntimeError, match="halfway"):
        with reference_catalog():
            raise RuntimeError("the check failed halfway")

    assert _scratch_schemas() == before


def test_a_drift_check_that_fails_inside_a_transaction_raises_its_own_error(live_db):
    """The failure aborted the transaction, so the clean-up cannot run SQL; the rollback
    removes the schema instead, and the caller sees the original error."""
    before = _scratch_schemas()

    with pytest.raises(DatabaseError, match="division by zero"):
        with transaction.atomic(), reference_catalog(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    assert _scratch_schemas() == before
