"""Read-model rows and the checkpoint commit together; a replay changes nothing."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.forms.models import model_to_dict
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.models import Event
from events_app.store import RECORD_FIELDS, PostgresEventStore
from intent_project.rowsets import ByPrimaryKey
from projections_app.models import ProjectionState, ProjectionStatus, SystemMetrics, SystemStatus
from projections_app.projectors.base import Projection
from projections_app.registry import get_projection
from projections_app.runner import _events_between, run_all, run_projection
from tests.integration.helpers import submit, test_payload


def _process_all(tenant, *command_ids):
    with schema_context(tenant.schema_name):
        for command_id in command_ids:
            processing.process(command_id)


class Boom(Exception):
    pass


def _flaky_projection(fail_on_message: str) -> Projection:
    def on_message(rec, batch):
        # Write first, then fail: the write must not survive the failure.
        SystemMetrics.objects.create(scope=f"probe-{rec.position}", updated_at=rec.recorded_at)
        batch.put(SystemMetrics(scope=f"batched-{rec.position}", updated_at=rec.recorded_at))
        if rec.event.text == fail_on_message:
            raise Boom(f"cannot handle {rec.event.text}")

    return Projection(
        name="flaky", version=1, read_models=(SystemMetrics,), handlers={MessageLogged: on_message}
    )


def test_a_failing_event_rolls_back_its_batch_and_keeps_the_checkpoint(fresh_tenant, settings):
    settings.PROJECTION_RETRY_BACKOFF_SECONDS = 0
    settings.PROJECTION_MAX_FAILURES = 2
    ids = [submit(fresh_tenant, "logMessage", {"message": m}).id for m in ("ok-1", "ok-2", "poison", "ok-3")]
    _process_all(fresh_tenant, *ids)
    projection = _flaky_projection("poison")
    with schema_context(fresh_tenant.schema_name):
        ProjectionState.objects.create(name="flaky")
        assert run_projection(projection).outcome == "failed"
        state = ProjectionState.objects.get(name="flaky")
        assert state.position == 0
        assert not SystemMetrics.objects.filter(scope__startswith="probe-").exists()
        assert not SystemMetrics.objects.filter(scope__startswith="batched-").exists()
        assert state.last_error["details"]["type"] == "messageLogged"
        assert state.last_error["message"] == "Boom: cannot handle poison"
        assert state.status == ProjectionStatus.RUNNING and state.failures == 1
        # Exhausted retries stop the projection at that event instead of skipping it.
        assert run_projection(projection).outcome == "failed"
        state.refresh_from_db()
        assert state.status == ProjectionStatus.STALLED
        assert run_projection(projection).outcome == "stalled"
        assert state.position == 0


def test_rows_and_checkpoint_advance_together(fresh_tenant):
    ids = [submit(fresh_tenant, "logMessage", {"message": f"m{i}"}).id for i in range(3)]
    _process_all(fresh_tenant, *ids)
    with schema_context(fresh_tenant.schema_name):
        result = run_projection(_flaky_projection("never"))  # no checkpoint row: busy
        assert result.outcome == "busy"
        ProjectionState.objects.create(name="flaky")
        assert run_projection(_flaky_projection("never")).applied == 3
        state = ProjectionState.objects.get(name="flaky")
        assert SystemMetrics.objects.filter(scope__startswith="probe-").count() == 3
        assert state.position == max(
            int(s.split("-")[1])
            for s in SystemMetrics.objects.filter(scope__startswith="probe-").values_list("scope", flat=True)
        )


def test_replaying_already_applied_events_changes_nothing(fresh_tenant):
    system_id = uuid.uuid4()
    ids = [
        submit(fresh_tenant, "executeTest", test_payload(system_id=system_id)).id,
        submit(fresh_tenant, "logMessage", {"message": "hi", "systemId": str(system_id)}).id,
        submit(fresh_tenant, "executeTest", test_payload(system_id=system_id)).id,
    ]
    _process_all(fresh_tenant, *ids)
    with schema_context(fresh_tenant.schema_name):
        run_all()
        before_status = [model_to_dict(r) for r in SystemStatus.objects.order_by("pk")]
        before_metrics = [model_to_dict(r) for r in SystemMetrics.objects.order_by("pk")]
        assert before_status[0]["number_executed_tests"] == 2
        assert before_metrics[0]["test_count"] == 2
        run_all()  # nothing new
        ProjectionState.objects.update(position=0)  # an operator rewinds every checkpoint
        run_all()
        assert [model_to_dict(r) for r in SystemStatus.objects.order_by("pk")] == before_status
        assert [model_to_dict(r) for r in SystemMetrics.objects.order_by("pk")] == before_metrics


def test_a_stalled_projection_keeps_its_commands_consumed(fresh_tenant):
    cmd = submit(fresh_tenant, "logMessage", {"message": "waits"})
    _process_all(fresh_tenant, cmd.id)
    with schema_context(fresh_tenant.schema_name):
        ProjectionState.objects.filter(name="system_metrics").update(status=ProjectionStatus.STALLED)
        run_all()
        from commands_app.models import Command

        assert Command.objects.get(pk=cmd.id).status == "consumed"
        ProjectionState.objects.filter(name="system_metrics").update(status=ProjectionStatus.RUNNING)
        run_all()
        assert Command.objects.get(pk=cmd.id).status == "processed"


# --- the run's fast-forward of consumers with nothing to apply ---------------------------------
def _checkpoints(tenant) -> dict[str, ProjectionState]:
    with schema_context(tenant.schema_name):
        return {s.name: s for s in ProjectionState.objects.all()}


def test_consumers_without_events_up_to_the_head_are_moved_there_without_a_batch(fresh_tenant):
    ids = [submit(fresh_tenant, "logMessage", {"message": f"m{i}"}).id for i in range(3)]
    _process_all(fresh_tenant, *ids)
    with schema_context(fresh_tenant.schema_name):
        from projections_app.runner import head_position

        head = head_position()
        results = run_all()

    checkpoints = _checkpoints(fresh_tenant)
    assert {name: s.position for name, s in checkpoints.items()} == dict.fromkeys(checkpoints, head)
    # The banking read models had nothing to apply: moved, not run.
    assert results["account_balances"].applied == 0 and results["account_balances"].advanced
    assert results["system_status"].applied == 3


def test_the_fast_forward_never_moves_a_stalled_consumer_or_one_another_runner_holds(fresh_tenant):
    import threading

    from django.db import connection, transaction

    ids = [submit(fresh_tenant, "logMessage", {"message": f"m{i}"}).id for i in range(2)]
    _process_all(fresh_tenant, *ids)
    with schema_context(fresh_tenant.schema_name):
        run_all()  # every checkpoint exists and is at the head
        ProjectionState.objects.filter(name="bank_totals").update(status=ProjectionStatus.STALLED)
    more = [submit(fresh_tenant, "logMessage", {"message": "later"}).id]
    _process_all(fresh_tenant, *more)

    held, release = threading.Event(), threading.Event()

    def hold_account_balances() -> None:
        with schema_context(fresh_tenant.schema_name), transaction.atomic():
            ProjectionState.objects.select_for_update().get(name="account_balances")
            held.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_account_balances)
    holder.start()
    try:
        assert held.wait(10)
        before = _checkpoints(fresh_tenant)
        with schema_context(fresh_tenant.schema_name):
            results = run_all()  # must not block on the held row
        after = _checkpoints(fresh_tenant)
    finally:
        release.set()
        holder.join(10)

    assert after["bank_totals"].position == before["bank_totals"].position
    assert results["bank_totals"].outcome == "stalled"
    assert after["account_balances"].position == before["account_balances"].position
    assert results["account_balances"].outcome == "busy"
    assert after["transfers"].position > before["transfers"].position


def test_the_fast_forward_leaves_a_checkpoint_that_moved_back_since_it_looked(fresh_tenant):
    """A rewind between the look and the move must not be jumped over to the head."""
    from projections_app.runner import _fast_forward, head_position

    ids = [submit(fresh_tenant, "logMessage", {"message": f"m{i}"}).id for i in range(2)]
    _process_all(fresh_tenant, *ids)
    with schema_context(fresh_tenant.schema_name):
        run_all()
        head = head_position()
        ProjectionState.objects.filter(name="bank_totals").update(position=0)  # rewound meanwhile

        moved = _fast_forward({"bank_totals": head - 1, "transfers": head - 1}, head)

        assert moved == set()  # both are at the head already, or behind what was checked
        ProjectionState.objects.filter(name="transfers").update(position=head - 1)
        assert _fast_forward({"bank_totals": head - 1, "transfers": head - 1}, head) == {"transfers"}
        assert ProjectionState.objects.get(name="bank_totals").position == 0


def test_the_runner_reads_events_exactly_as_the_orm_reads_them(fresh_tenant):
    """The runner reads a batch's events without the ORM's per-row converters (prepared,
    psycopg's C timestamp loader, JSON parsed by the runner): the values, their types and
    the timestamps' tzinfo are what `values_list` gives."""
    projection = get_projection("system_status")
    with schema_context(fresh_tenant.schema_name), transaction.atomic():
        store = PostgresEventStore(get_registry())
        system = System(id=uuid.uuid4())
        store.append(system, [MessageLogged(text="ünïcode ✓", level="warning")], {"command_id": None, "n": 2**70})
        store.append(system, [MessageLogged(text="second")], {"command_id": None})
        fast = _events_between(projection, 0, 10**9, 100)
        orm = list(
            Event.objects.filter(type__in=projection.event_types).order_by("position").values_list(*RECORD_FIELDS)
        )
    assert fast == orm and len(fast) == 2
    assert [[type(v) for v in row] for row in fast] == [[type(v) for v in row] for row in orm]
    assert [row[8].tzinfo for row in fast] == [row[8].tzinfo for row in orm]


def test_a_checkpoint_read_by_key_is_the_instance_the_orm_reads(fresh_tenant):
    """rowsets.ByPrimaryKey (the runner's checkpoint lock): every field through its
    converters, the JSON error decoded, as the ORM would load it."""
    with schema_context(fresh_tenant.schema_name), transaction.atomic():
        ProjectionState.objects.filter(name="system_status").update(
            last_error={"code": "projection_handler_failed", "details": {"position": 3}}, failures=1
        )
        fast = ByPrimaryKey(ProjectionState, lock="FOR UPDATE SKIP LOCKED").get("system_status")
        orm = ProjectionState.objects.get(name="system_status")
        assert ByPrimaryKey(ProjectionState).get("no such projection") is None
    assert model_to_dict(fast) == model_to_dict(orm)
    assert fast.last_error == {"code": "projection_handler_failed", "details": {"position": 3}}
    assert fast.updated_at == orm.updated_at and fast.updated_at.tzinfo == orm.updated_at.tzinfo
