"""Live streams through the API tier: who may open one, what a refusal says and leaves
behind (no place held), and that a stream's in-memory read scope shows each role exactly
the events the events list shows it. The streams themselves, served by the front door to
real clients, are in tests/integration/test_event_streams.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from commands_app.read_policy import Reader, sees_event, visible_events
from events_app.models import Event
from events_app.stream import with_sender
from intent_project import waits
from intent_project.streams import STREAMS
from tests.api.helpers import assert_error, client_for, command_url, execute_test, send
from tests.api.read_scopes import EVERYONE, seed

STREAM = "/t/acme/api/events/stream/"


def places(world: Any, persona: str) -> int:
    return waits.in_progress(str(world[persona].user.pk), STREAMS)


@pytest.mark.parametrize("persona", EVERYONE)
def test_a_streams_scope_shows_each_role_exactly_the_events_it_lists(world, persona):
    from django_tenants.utils import schema_context

    from intent_project.api.permissions import role_in

    seeded = seed(world)
    user = world[persona].user
    reader = Reader.of(user, role_in(user, world.acme))
    sees = sees_event(reader)
    with schema_context(world.acme.schema_name):
        rows = list(with_sender(Event.objects.filter(position__gt=seeded.start)).order_by("position"))
        listed = set(
            Event.objects.filter(visible_events(reader), position__gt=seeded.start).values_list(
                "id", flat=True
            )
        )
    streamed = {row.id for row in rows if sees(row.type, row.sent_by)}
    assert streamed == listed


def test_a_stream_under_plain_wsgi_sends_the_events_then_keep_alives(world, settings):
    settings.STREAM_HEARTBEAT_SECONDS = 1
    client = client_for(world["dave"])
    system_id = uuid.uuid4()
    from tests.api.helpers import head_position, submit_and_process

    start = head_position(world.acme)
    submit_and_process(client, "executeTest", execute_test(system_id=system_id), world.acme)
    response = client.get(f"{STREAM}?after={start}&aggregate_id={system_id}", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"retry: 2000\n\n"
    head, _, data = next(chunks).decode().partition("\ndata: ")
    event = json.loads(data)
    assert head == f"id: {event['position']}\nevent: event"
    assert event["position"] > start and event["type"] == "testExecuted"
    assert event["aggregate_id"] == str(system_id)
    assert places(world, "dave") == 1
    assert next(chunks) == b": keep-alive\n\n"
    response.close()
    assert places(world, "dave") == 0


@pytest.mark.parametrize(
    ("persona", "query", "headers", "status", "code"),
    [
        (None, "", {}, 401, "not_authenticated"),
        ("bob", "", {}, 403, "not_a_member"),
        ("dave", "?after=-1", {}, 400, "validation_error"),
        ("dave", "?aggregate_id=not-a-uuid", {}, 400, "validation_error"),
        ("dave", "", {"HTTP_LAST_EVENT_ID": "12; DROP TABLE"}, 400, "validation_error"),
        ("dave", "", {"HTTP_LAST_EVENT_ID": str(2**63)}, 400, "validation_error"),
    ],
)
def test_a_refused_stream_says_why_in_json_and_holds_no_place(world, persona, query, headers, status, code):
    client = client_for(world[persona] if persona else None)
    response = client.get(STREAM + query, HTTP_ACCEPT="text/event-stream", **headers)
    assert_error(response, status, code)
    assert response["Content-Type"] == "application/json"
    if persona:
        assert places(world, persona) == 0


def test_a_user_at_its_stream_limit_is_refused_and_others_are_not(world, settings):
    settings.STREAMS_PER_USER = 2
    held = [waits.acquire(str(world["vera"].user.pk), 60, STREAMS) for _ in range(2)]
    try:
        refused = client_for(world["vera"]).get(STREAM, HTTP_ACCEPT="text/event-stream")
        body = assert_error(refused, 429, "too_many_streams")
        assert body["details"] == {"limit": 2}
        assert int(refused["Retry-After"]) >= 1
        assert places(world, "vera") == 2
        other = client_for(world["dave"]).get(STREAM + f"?after={2**62}", HTTP_ACCEPT="text/event-stream")
        assert other.status_code == 200
        other.close()
    finally:
        for slot in held:
            waits.release(slot)


def test_a_command_stream_is_refused_for_a_command_one_may_not_see(world):
    posted = send(client_for(world["dave"]), "executeTest", execute_test())
    assert posted.status_code == 202
    stream = command_url(posted.json()["id"]) + "stream/"
    assert_error(client_for(world["alice"]).get(stream), 404, "not_found")  # a tester: not its command
    assert_error(client_for(world["bob"]).get(stream), 403, "not_a_member")
    assert_error(client_for().get(stream), 401, "not_authenticated")
    assert_error(client_for(world["dave"]).get(command_url(uuid.uuid4()) + "stream/"), 404, "not_found")
    assert places(world, "alice") == places(world, "bob") == 0


def test_a_command_stream_under_plain_wsgi_ends_after_the_final_status(world):
    from tests.api.helpers import process, project

    client = client_for(world["dave"])
    posted = send(client, "executeTest", execute_test())
    command_id = posted.json()["id"]
    process(world.acme, command_id)
    project(world.acme)
    response = client.get(command_url(command_id) + "stream/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    chunks = list(response.streaming_content)  # ends by itself: the command is final
    assert chunks[0] == b"retry: 2000\n\n"
    assert chunks[1].startswith(b"event: status\ndata: {")
    assert b'"status":"processed"' in chunks[1]
    assert len(chunks) == 2
    assert places(world, "dave") == 0
