"""Sagas are checkpointed consumers: the commands they issue commit with their checkpoint,
and a trigger delivered twice issues nothing twice."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django_tenants.utils import schema_context

from commands_app.domain.saga import issued_command_id
from commands_app.models import Command, CommandStatus
from commands_app.processing import process
from commands_app.slices.system.payloads import MultiEventEmitted
from commands_app.slices.system.sagas import SYSTEM_SAGA
from events_app.models import Event
from projections_app.models import ProjectionState
from projections_app.registry import get_consumer
from projections_app.runner import head_position, run_projection
from tests.integration.helpers import submit


def _emit(tenant, count: int) -> Command:
    command = submit(tenant, "emitMultipleEvents", {"count": count}, role="tester")
    with schema_context(tenant.schema_name):
        assert process(command.id) in {"consumed", "processed"}
    return command


def _issued(tenant, command: Command) -> list[Command]:
    with schema_context(tenant.schema_name):
        return list(
            Command.objects.filter(correlation_id=command.id).exclude(id=command.id).order_by("created_at")
        )


def test_the_system_saga_issues_a_delayed_and_an_immediate_message(fresh_tenant):
    command = _emit(fresh_tenant, 3)
    with schema_context(fresh_tenant.schema_name):
        result = run_projection(get_consumer("system_saga"))
        assert result.outcome == "caught-up"
        events = list(Event.objects.filter(command_id=command.id).order_by("position"))
        state = ProjectionState.objects.get(name="system_saga")
        assert state.position == head_position()

    issued = {row.causation_id: row for row in _issued(fresh_tenant, command)}
    assert set(issued) == {command.id, events[2].id}
    delayed, immediate = issued[command.id], issued[events[2].id]
    assert delayed.not_before == events[0].recorded_at + timedelta(seconds=3)
    assert immediate.not_before is None
    for row in (delayed, immediate):
        assert (row.type, row.status) == ("logMessage", CommandStatus.PENDING)
        assert row.metadata["source"] == "saga" and row.metadata["saga"] == "system_saga"
        assert row.metadata["role"] == "system" and row.metadata["tenant"] == fresh_tenant.slug
        assert row.id == issued_command_id("system_saga", row.causation_id, "0")
        assert row.aggregate_id == events[0].stream_id


def test_a_trigger_delivered_again_issues_nothing_twice(fresh_tenant):
    command = _emit(fresh_tenant, 3)
    consumer = get_consumer("system_saga")
    with schema_context(fresh_tenant.schema_name):
        run_projection(consumer)
        first = {row.id: row.created_at for row in _issued(fresh_tenant, command)}
        # As if the checkpoint had been lost: the whole log is delivered again.
        ProjectionState.objects.filter(name="system_saga").update(position=0)
        run_projection(consumer)
    again = {row.id: row.created_at for row in _issued(fresh_tenant, command)}
    assert len(first) == 2
    assert again == first


def test_issued_commands_and_the_checkpoint_commit_together(fresh_tenant, monkeypatch):
    command = _emit(fresh_tenant, 3)

    def broken(rec, state):
        raise RuntimeError("saga bug")

    # The command reaction runs first in the batch and succeeds; the event reaction fails.
    monkeypatch.setitem(SYSTEM_SAGA.on_events, MultiEventEmitted, broken)
    with schema_context(fresh_tenant.schema_name):
        before = ProjectionState.objects.get(name="system_saga").position
        result = run_projection(get_consumer("system_saga"))
        state = ProjectionState.objects.get(name="system_saga")
    assert result.outcome == "failed"
    assert state.position == before
    assert state.last_error["code"] == "projection_handler_failed"
    assert _issued(fresh_tenant, command) == []  # the delayed command was rolled back with it


def test_a_trace_is_private_to_its_tenant_and_unknown_flows_are_404(live_db, world):
    command = submit(world.acme, "logMessage", {"message": "private"})
    outsider = world["bob"].client().get(f"/t/acme/api/traces/{command.correlation_id}/")
    assert outsider.status_code == 403
    elsewhere = world["bob"].client().get(f"/t/globex/api/traces/{command.correlation_id}/")
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["code"] == "not_found"
    missing = world["alice"].client().get(f"/t/acme/api/traces/{uuid.uuid4()}/")
    assert missing.status_code == 404
    assert world["alice"].client().get("/t/acme/api/traces/not-a-uuid/").status_code == 404
