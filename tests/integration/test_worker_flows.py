"""A whole flow through a real Celery worker: a command, the saga's immediate and delayed
follow-ups, and the trace and admin tree that show how they are linked.

(Its own module, after the tests that need no worker: the session's worker, once started,
would handle their commands behind their backs.)"""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from commands_app.models import Command, CommandStatus
from tests.conftest import wait_until


@pytest.fixture(scope="module")
def worker(celery_worker):
    return celery_worker


@pytest.mark.worker
def test_through_a_worker_the_flow_finishes_and_its_trace_shows_every_link(worker, live_db, world):
    # A developer reads every command and event of the system slice, the saga's included.
    client = world["dave"].client()
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
    assert "emitMultipleEvents" in html and "saga system_saga" in html and 'class="node current"' in html
