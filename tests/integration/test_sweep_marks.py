"""The sweep visits marked tenants only, and no work is lost by it (intent_project/sweep_marks.py).

Marks are set by the application in the writer's transaction (intent_project/announcements.py);
a pass removes a tenant's mark only when a visit found nothing left. These tests commit for real (`live_db`): marks are rows in the
shared table that other connections race on.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import Command
from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.store import PostgresEventStore
from intent_project import metrics, sweep_marks
from intent_project.tasks import sweep_all_tenants
from intent_project.tenants.models import SweepMark, Tenant
from intent_project.tenants.portable import import_tenant
from intent_project.tenants.services import create_tenant
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.runner import ensure_checkpoints, run_all
from tests.integration.helpers import submit


def _marked(tenant: Any) -> bool:
    return SweepMark.objects.filter(schema_name=tenant.schema_name).exists()


def _settle(tenant: Any) -> None:
    """Sweep until the tenant's visit found nothing left and its mark is gone."""
    for _ in range(3):
        sweep_all_tenants(full=False)
        if not _marked(tenant):
            return
    raise AssertionError(f"{tenant.slug} kept its mark: {list(SweepMark.objects.values_list())}")


def _append_event(tenant: Any) -> None:
    with schema_context(tenant.schema_name), transaction.atomic():
        aggregate = System(id=uuid.uuid4())
        PostgresEventStore(get_registry()).append(
            aggregate,
            [MessageLogged(text="appended", level="info", system_id=aggregate.id)],
            {},
        )
    connection.set_schema_to_public()


def _catch_up(tenant: Any) -> None:
    """Run the tenant's projections here (no worker in these tests)."""
    with schema_context(tenant.schema_name):
        run_all()
    connection.set_schema_to_public()


def _due(tenant: Any, command_id: Any) -> None:
    """Make a pending command look quiet for long enough that the sweep re-sends it."""
    with schema_context(tenant.schema_name):
        Command.objects.filter(pk=command_id).update(updated_at=timezone.now() - timedelta(hours=1))
    connection.set_schema_to_public()


def _swept(tenant: Any, command_id: Any) -> bool:
    with schema_context(tenant.schema_name):
        return Command.objects.get(pk=command_id).swept_at is not None


def _tenant_of_each_kind(tmp_path: Path, settings: Any) -> list[Any]:
    tenants = []
    for clone in (True, False):
        settings.TENANT_CLONE_FROM_TEMPLATE = clone
        tenants.append(create_tenant(f"k{int(clone)}" + uuid.uuid4().hex[:10], "kind"))
        connection.set_schema_to_public()
    export = tmp_path / "export.jsonl.gz"
    call_command("export_tenant", tenants[0].slug, out=str(export))
    tenants.append(import_tenant(export, "ki" + uuid.uuid4().hex[:10]))
    connection.set_schema_to_public()
    return tenants


def test_cloned_migrated_and_imported_tenants_mark_themselves(live_db, tmp_path, settings):
    for tenant in _tenant_of_each_kind(tmp_path, settings):
        _settle(tenant)
        command = submit(tenant, "logMessage", {"message": "new work"})
        assert _marked(tenant), tenant.slug  # a command inserted
        with schema_context(tenant.schema_name):
            processing.process(command.id)
        connection.set_schema_to_public()
        _catch_up(tenant)
        _settle(tenant)  # processed, projections caught up: nothing left
        _append_event(tenant)
        assert _marked(tenant), tenant.slug  # events appended


def test_a_pending_command_in_an_otherwise_idle_tenant_is_found_by_the_next_sweep(fresh_tenant):
    _settle(fresh_tenant)
    command = submit(fresh_tenant, "logMessage", {"message": "its message was lost"})
    _due(fresh_tenant, command.id)
    outcome = sweep_all_tenants(full=False)
    assert outcome["full"] == 0
    assert _swept(fresh_tenant, command.id)
    assert _marked(fresh_tenant)  # still pending: followed until it is done


def test_an_event_appended_with_projections_behind_marks_the_tenant_until_they_catch_up(fresh_tenant):
    _settle(fresh_tenant)
    _append_event(fresh_tenant)
    assert _marked(fresh_tenant)
    sweep_all_tenants(full=False)
    assert _marked(fresh_tenant)  # the projections are behind: the visit woke them, the mark stays
    _catch_up(fresh_tenant)
    _settle(fresh_tenant)


def test_a_command_set_back_to_pending_marks_the_tenant(fresh_tenant):
    command = submit(fresh_tenant, "logMessage", {"message": "will fail"})
    with schema_context(fresh_tenant.schema_name):
        Command.objects.filter(pk=command.id).update(status="failed")
    connection.set_schema_to_public()
    _settle(fresh_tenant)
    with schema_context(fresh_tenant.schema_name):
        Command.objects.filter(pk=command.id).update(status="pending")  # an operator's retry
    connection.set_schema_to_public()
    assert _marked(fresh_tenant)


def _checkpoint_saved(tenant: Any, **changes: Any) -> None:
    with schema_context(tenant.schema_name):
        state = ProjectionState.objects.get(name="system_status")
        for name, value in changes.items():
            setattr(state, name, value)
        state.save()
    connection.set_schema_to_public()


def test_a_checkpoint_stalled_or_rewound_marks_the_tenant_and_one_moving_on_does_not(fresh_tenant):
    _settle(fresh_tenant)
    ensure_checkpoints(fresh_tenant.schema_name)  # nothing to create
    _checkpoint_saved(fresh_tenant, position=5)  # forward: the runner's every batch
    assert not _marked(fresh_tenant)
    _checkpoint_saved(fresh_tenant, status=ProjectionStatus.STALLED)
    assert _marked(fresh_tenant)
    _checkpoint_saved(fresh_tenant, status=ProjectionStatus.RUNNING)
    _settle(fresh_tenant)
    _checkpoint_saved(fresh_tenant, position=0)  # an operator's rewind
    assert _marked(fresh_tenant)


def test_a_batch_saving_its_progress_marks_nothing_and_a_rewind_through_it_marks(fresh_tenant):
    """ProjectionState.save_progress, the runner's every batch: one prepared UPDATE that
    leaves no mark while the position moves forward, and save() with its mark otherwise."""
    _settle(fresh_tenant)
    with schema_context(fresh_tenant.schema_name):
        with transaction.atomic():
            state = ProjectionState.objects.get(name="system_status")
            state.position, state.failures, state.last_error = 7, 2, {"code": "x", "details": {}}
            state.save_progress()
        assert not _marked(fresh_tenant)
        saved = ProjectionState.objects.get(name="system_status")
        assert (saved.position, saved.failures, saved.last_error) == (7, 2, {"code": "x", "details": {}})
        with transaction.atomic():
            state.position = 3  # the same instance: what it saved is what it compares with
            state.save_progress()
        assert ProjectionState.objects.get(name="system_status").position == 3
    assert _marked(fresh_tenant)


def _read_mark(tenant: Any) -> sweep_marks.Visit:
    visit = next(v for v in sweep_marks.to_visit(full=False) if v.schema_name == tenant.schema_name)
    assert visit.marked_at is not None
    return visit


def test_a_writer_in_flight_keeps_the_mark_the_sweep_would_remove(fresh_tenant):
    """The writer's mark finds the mark already there and writes nothing; the sweep,
    whose visit cannot see the uncommitted command, must still not remove the mark."""
    _settle(fresh_tenant)
    submit(fresh_tenant, "logMessage", {"message": "sets the mark"})
    with schema_context(fresh_tenant.schema_name):
        Command.objects.all().delete()  # idle again, mark still set
    connection.set_schema_to_public()
    visit = _read_mark(fresh_tenant)
    inserted, commit = threading.Event(), threading.Event()
    ids: list[Any] = []

    def writer() -> None:
        try:
            with transaction.atomic():
                ids.append(submit(fresh_tenant, "logMessage", {"message": "in flight"}).id)
                inserted.set()
                assert commit.wait(20)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inserted.wait(20)
        assert _marked(fresh_tenant)
        assert sweep_marks.release(visit) is False  # the writer holds the mark's lock
    finally:
        commit.set()
        thread.join(20)
    assert _marked(fresh_tenant)
    _due(fresh_tenant, ids[0])
    sweep_all_tenants(full=False)
    assert _swept(fresh_tenant, ids[0])


def test_work_committed_between_the_visit_and_the_delete_keeps_the_mark(fresh_tenant):
    _settle(fresh_tenant)
    submit(fresh_tenant, "logMessage", {"message": "sets the mark"})
    with schema_context(fresh_tenant.schema_name):
        Command.objects.all().delete()
    connection.set_schema_to_public()
    visit = _read_mark(fresh_tenant)  # the sweep read the mark and found the tenant idle ...
    submit(fresh_tenant, "logMessage", {"message": "committed meanwhile"})  # ... then this
    assert sweep_marks.release(visit) is False
    assert _marked(fresh_tenant)


def test_a_mark_set_again_after_it_was_read_is_never_deleted_by_the_older_read(fresh_tenant):
    _settle(fresh_tenant)
    submit(fresh_tenant, "logMessage", {"message": "sets the mark"})
    with schema_context(fresh_tenant.schema_name):
        Command.objects.all().delete()
    connection.set_schema_to_public()
    visit = _read_mark(fresh_tenant)
    SweepMark.objects.filter(schema_name=fresh_tenant.schema_name).delete()  # another pass removed it
    _append_event(fresh_tenant)  # a new mark
    _catch_up(fresh_tenant)  # idle again, so only the mark's time tells the two apart
    assert sweep_marks.release(visit) is False
    assert _marked(fresh_tenant)


@pytest.fixture(scope="module")
def idle_tenants(world: Any, django_db_blocker: Any) -> list[Any]:
    with django_db_blocker.unblock():
        tenants = [create_tenant("idle" + uuid.uuid4().hex[:10], "idle") for _ in range(50)]
        connection.set_schema_to_public()
    return tenants


def test_a_pass_over_50_idle_tenants_makes_a_constant_number_of_queries(idle_tenants, live_db):
    sweep_all_tenants(full=True)  # every idle tenant's mark removed
    ours = [t.schema_name for t in idle_tenants]
    assert not SweepMark.objects.filter(schema_name__in=ours).exists()
    # Marks left by earlier tests' tenants are theirs (work they left unfinished on purpose).
    SweepMark.objects.exclude(schema_name__in=ours).delete()
    with CaptureQueriesContext(connection) as queries:
        outcome = sweep_all_tenants(full=False)
    assert outcome == {"full": 0, "visited": 0, "released": 0}
    assert len(queries) <= 2, [q["sql"] for q in queries]


def test_a_full_pass_visits_every_tenant_and_follows_work_nobody_marked(idle_tenants, live_db):
    lost = idle_tenants[0]
    command = submit(lost, "logMessage", {"message": "its mark was lost"})
    _due(lost, command.id)
    SweepMark.objects.filter(schema_name=lost.schema_name).delete()
    sweep_all_tenants(full=False)
    assert not _swept(lost, command.id)  # not marked: not visited
    SweepMark.objects.create(schema_name="t_deleted_long_ago")
    outcome = sweep_all_tenants(full=True)
    assert outcome["visited"] == Tenant.objects.exclude(schema_name="public").count()
    assert _swept(lost, command.id)
    assert _marked(lost)  # adopted: followed until done
    assert not SweepMark.objects.filter(schema_name="t_deleted_long_ago").exists()


def test_one_full_pass_per_period_whoever_asks(live_db, settings):
    settings.SWEEP_FULL_PASS_SECONDS = 60
    redis.Redis.from_url(settings.REDIS_URL).delete(sweep_marks.FULL_PASS_KEY)
    assert sweep_marks.full_pass_due() is True
    assert sweep_marks.full_pass_due() is False  # another beat or worker, same period


def test_a_tenant_with_a_dead_letter_stays_in_the_metrics_summary(fresh_tenant):
    _settle(fresh_tenant)
    with schema_context(fresh_tenant.schema_name):
        DeadLetter.objects.create(
            projection="system_status", event_id=uuid.uuid4(), position=1, event_type="messageLogged"
        )
    connection.set_schema_to_public()
    for _ in range(2):  # the tenant stays marked, so every pass counts its dead letter
        sweep_all_tenants(full=False)
        assert _marked(fresh_tenant)
        summary = json.loads(redis.Redis.from_url(settings.REDIS_URL).get(metrics.PROJECTION_SUMMARY_KEY))
        assert summary["system_status"]["dead_letters"] >= 1
