"""Sagas are checkpointed consumers: the commands they issue commit with their checkpoint,
and a trigger delivered twice issues nothing twice."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test import Client
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
from tests.conftest import wait_until
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


@pytest.fixture(scope="module")
def worker(celery_worker):
    return celery_worker


@pytest.mark.worker
def test_through_a_worker_the_flow_finishes_and_its_trace_shows_every_link(worker, live_db, world):
    client = world["alice"].client()
    posted = client.post(
        "/t/acme/api/commands/",
        {"type": "emitMultipleEvents", "payload": {"count": 3, "systemId": str(uuid.uuid4())}},
        format="json",
    )
    assert posted.status_code == 202, posted.content
    command_id = uuid.UUID(posted.json()["id"])

    def finished() -> list[Command] | None:
        with schema_context(world.acme.schema_name):
            rows = list(Command.objects.filter(correlation_id=command_id).exclude(id=command_id))
        done = len(rows) == 2 and all(r.status == CommandStatus.PROCESSED for r in rows)
        return rows if done else None

    issued = wait_until(finished, timeout=30)
    delayed = next(r for r in issued if r.not_before is not None)
    assert delayed.processed_at >= delayed.not_before  # never early

    trace = client.get(f"/t/acme/api/traces/{command_id}/")
    assert trace.status_code == 200, trace.content
    body = trace.json()
    assert (body["commands"], body["events"]) == (3, 5)
    (root,) = body["roots"]
    assert (root["kind"], root["id"], root["type"]) == ("command", str(command_id), "emitMultipleEvents")
    children = root["children"]
    assert [c["type"] for c in children if c["kind"] == "event"] == ["multiEventEmitted"] * 3
    (from_command,) = [c for c in children if c["kind"] == "command"]
    third = [c for c in children if c["kind"] == "event"][2]
    (from_event,) = third["children"]
    for issued_node in (from_command, from_event):
        assert issued_node["saga"] == "system_saga"
        assert [e["type"] for e in issued_node["children"]] == ["messageLogged"]

    ada = Client(raise_request_exception=False)
    ada.force_login(world["ada"].user)
    page = ada.get(f"/t/acme/admin/commands_app/command/{delayed.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "emitMultipleEvents" in html and "saga system_saga" in html and "▶" in html


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
