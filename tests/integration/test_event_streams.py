"""Live streams against the web tier as `make run` starts it and a real Celery worker:
events arrive in order without gaps, a client that reconnects with its last id misses
nothing and gets nothing twice, a command's stream shows consumed then processed, and
access is checked again while a stream lasts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from events_app.models import Event
from intent_project import waits
from intent_project.streams import STREAMS
from intent_project.tenants.models import Membership
from intent_project.tenants.services import set_membership
from tests.conftest import start_worker, wait_until
from tests.integration.helpers import test_payload
from tests.integration.web import EventStream, Message, WebTier, open_stream

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def web(world, isolated_redis, tmp_path_factory) -> Iterator[WebTier]:
    tier = WebTier(
        tmp_path_factory.mktemp("web") / "web.log",
        STREAM_HEARTBEAT_SECONDS="1",
        STREAM_RECHECK_SECONDS="1",
        STREAMS_PER_USER="40",
        WEB_THREADS="4",  # streams beyond the pool's threads (2 processes x 4)
    ).start()
    yield tier
    tier.stop()


def head(tenant: Any) -> int:
    with schema_context(tenant.schema_name):
        return max(Event.objects.values_list("position", flat=True), default=0)


def send_tests(web: WebTier, token: str, count: int, system_id: uuid.UUID) -> list[str]:
    ids = []
    for _ in range(count):
        status, body, _ = web.request(
            "POST",
            "/t/acme/api/commands/",
            token,
            {"type": "executeTest", "payload": test_payload(system_id)},
        )
        assert status == 202, body
        ids.append(body["id"])
    return ids


def listed(web: WebTier, token: str, after: int, query: str = "") -> list[dict[str, Any]]:
    status, body, _ = web.request("GET", f"/t/acme/api/events/?after={after}&limit=1000{query}", token)
    assert status == 200, body
    return list(body["results"])


def collect(stream: EventStream, count: int) -> list[Message]:
    messages = stream.take(count)
    assert len(messages) == count, (len(messages), stream.comments)
    return messages


def test_a_subscriber_receives_every_event_once_in_position_order_as_the_api_lists_them(
    world, live_db, web, celery_worker
):
    dave = world["dave"]
    start = head(world.acme)
    system_id = uuid.uuid4()
    stream = open_stream(
        web.port, f"/t/acme/api/events/stream/?after={start}&aggregate_id={system_id}", dave.token
    )
    assert stream.status == 200
    assert stream.header("Content-Type") == "text/event-stream; charset=utf-8"
    assert stream.header("X-Request-ID")
    send_tests(web, dave.token, 12, system_id)
    messages = collect(stream, 12)
    stream.close()
    assert stream.retry == 2000
    assert {m.event for m in messages} == {"event"}
    assert [m.json() for m in messages] == listed(web, dave.token, start, f"&aggregate_id={system_id}")
    assert [int(m.id or 0) for m in messages] == [m.json()["position"] for m in messages]


def test_a_client_that_reconnects_with_its_last_id_misses_nothing_and_gets_nothing_twice(
    world, live_db, web, celery_worker
):
    dave = world["dave"]
    start = head(world.acme)
    system_id = uuid.uuid4()
    path = f"/t/acme/api/events/stream/?after={start}&aggregate_id={system_id}"
    first = open_stream(web.port, path, dave.token)
    send_tests(web, dave.token, 5, system_id)
    received = collect(first, 3)
    first.close()  # cut mid-stream: two more were on their way or already sent
    send_tests(web, dave.token, 5, system_id)  # appended while the client is away
    wait_until(lambda: len(listed(web, dave.token, start, f"&aggregate_id={system_id}")) == 10)
    # As an EventSource does: the same URL again (its ?after= is older), with Last-Event-ID.
    second = open_stream(web.port, path, dave.token, last_event_id=received[-1].id)
    received += collect(second, 7)
    second.close()
    positions = [m.json()["position"] for m in received]
    assert positions == sorted(set(positions))
    assert [m.json() for m in received] == listed(web, dave.token, start, f"&aggregate_id={system_id}")


def test_each_role_streams_exactly_the_events_it_may_list(world, live_db, web, celery_worker):
    start = head(world.acme)
    system_id = uuid.uuid4()
    send_tests(web, world["dave"].token, 3, system_id)  # dave's: alice (tester) sees none of them
    send_tests(web, world["alice"].token, 2, system_id)
    query = f"&aggregate_id={system_id}"
    wait_until(lambda: len(listed(web, world["root"].token, start, query)) == 5)
    for persona in ("dave", "alice", "vera", "ada", "root"):
        token = world[persona].token
        wanted = listed(web, token, start, f"&aggregate_id={system_id}")
        stream = open_stream(
            web.port, f"/t/acme/api/events/stream/?after={start}&aggregate_id={system_id}", token
        )
        got = [m.json() for m in stream.take(len(wanted))]
        # Nothing beyond what it may list: only keep-alives follow.
        with pytest.raises(TimeoutError):
            stream.next(within=2.5)
        stream.close()
        assert got == wanted, persona
    assert len(listed(web, world["alice"].token, start, f"&aggregate_id={system_id}")) == 2


def test_a_quiet_stream_sends_keep_alives(world, live_db, web):
    stream = open_stream(web.port, f"/t/acme/api/events/stream/?after={10**12}", world["vera"].token)
    wait_until(lambda: stream.response.readline() == b": keep-alive\n", timeout=10, interval=0)
    stream.close()


def test_a_member_removed_mid_stream_gets_an_error_and_the_stream_ends(world, live_db, web):
    User = get_user_model()
    user = User.objects.create_user(f"leaver-{uuid.uuid4().hex[:8]}", password="leaver-password-123")
    from knox.models import AuthToken

    _, token = AuthToken.objects.create(user=user)
    set_membership(user, world.acme, "viewer")
    connection.set_schema_to_public()
    stream = open_stream(web.port, f"/t/acme/api/events/stream/?after={10**12}", token)
    assert stream.status == 200
    assert waits.in_progress(str(user.pk), STREAMS) == 1
    Membership.objects.filter(user=user, tenant=world.acme).delete()
    connection.set_schema_to_public()
    message = stream.next()
    assert message is not None and message.event == "error"
    assert message.json()["error"]["code"] == "not_a_member"
    assert stream.next() is None  # ended
    wait_until(lambda: waits.in_progress(str(user.pk), STREAMS) == 0)


def test_a_command_stream_shows_consumed_then_processed_and_ends(world, live_db, web, tmp_path):
    # Commands handled by a commands-only worker stay consumed until a projections worker runs.
    commands_only = start_worker(tmp_path / "commands.log", "-Q", "commands", "-n", "commands-only@%h")
    try:
        dave = world["dave"]
        status, body, _ = web.request(
            "POST",
            "/t/acme/api/commands/",
            dave.token,
            {"type": "executeTest", "payload": test_payload(uuid.uuid4())},
        )
        assert status == 202, body
        stream = open_stream(web.port, f"/t/acme/api/commands/{body['id']}/stream/", dave.token)
        assert stream.status == 200
        statuses = []
        first = stream.next()
        assert first is not None and first.event == "status"
        statuses.append(first.json()["status"])
        if statuses[-1] == "pending":
            consumed = stream.next()
            assert consumed is not None
            statuses.append(consumed.json()["status"])
        assert statuses[-1] == "consumed"
        projections = start_worker(tmp_path / "projections.log", "-Q", "projections", "-n", "projections@%h")
        try:
            final = stream.next()
            assert final is not None and final.json()["status"] == "processed"
            assert final.json()["id"] == body["id"]
            assert stream.next() is None  # the stream ends after a final status
        finally:
            projections.stop()
    finally:
        commands_only.stop()


def test_a_command_stream_refuses_who_may_not_see_the_command(world, live_db, web):
    dave = world["dave"]
    status, body, _ = web.request(
        "POST",
        "/t/acme/api/commands/",
        dave.token,
        {
            "type": "executeTest",
            "payload": test_payload(uuid.uuid4()),
            "not_before": (timezone.now() + timedelta(days=300)).isoformat(),
        },
    )
    assert status == 202, body
    for persona, code in (("bob", 403), ("alice", 404)):
        stream = open_stream(web.port, f"/t/acme/api/commands/{body['id']}/stream/", world[persona].token)
        assert stream.status == code
        assert stream.header("Content-Type") == "application/json"
        stream.close()
        assert waits.in_progress(str(world[persona].user.pk), STREAMS) == 0


def test_streams_hold_no_thread_while_other_requests_go_on(world, live_db, web):
    """Three times as many open streams as the web tier has threads (2 processes x 4)."""
    token = world["root"].token
    streams = [open_stream(web.port, f"/t/acme/api/events/stream/?after={10**12}", token) for _ in range(24)]
    assert {stream.status for stream in streams} == {200}
    results: list[int] = []

    def read_health() -> None:
        status, _, _ = web.request("GET", "/t/acme/api/commands/?limit=1", token)
        results.append(status)

    threads = [threading.Thread(target=read_health) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [200] * 20
    for stream in streams:
        stream.close()
