"""Fair waiting, against the web tier started as the README says
(`gunicorn -c python:intent_project.gunicorn_conf`): parked waits hold no thread, so other
requests go on; the cap per user holds across web processes; every wake re-checks access.

Parked requests are sent on raw sockets and left unanswered on purpose; a wait's place in
Redis (intent_project.waits) says when it is parked.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from commands_app import bus
from commands_app.models import Command
from intent_project import announcements, waits
from intent_project.tenants.models import Membership
from intent_project.tenants.services import set_membership
from tests.conftest import wait_until
from tests.integration.web import WebTier

FAR_AHEAD = timedelta(days=300)  # a command scheduled this late stays pending


def answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Read a parked request's answer (it was sent with Connection: close)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def unanswered(sockets: list[socket.socket]) -> int:
    count = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            if not sock.recv(1, socket.MSG_PEEK):
                continue  # closed: answered
        except BlockingIOError:
            count += 1
        finally:
            sock.setblocking(True)
    return count


@pytest.fixture(scope="module")
def web(world, isolated_redis, tmp_path_factory) -> Iterator[WebTier]:
    tier = WebTier(tmp_path_factory.mktemp("web") / "web.log", WAITS_PER_USER="50").start()
    yield tier
    tier.stop()


def scheduled_command(web: WebTier, token: str, type_name: str = "executeTest") -> str:
    """A command of the caller's that stays pending (scheduled far ahead)."""
    status, body, _ = web.request(
        "POST",
        "/t/acme/api/commands/",
        token,
        {
            "type": type_name,
            "payload": {"testId": str(uuid.uuid4()), "testName": "parked"},
            "not_before": (timezone.now() + FAR_AHEAD).isoformat(),
        },
    )
    assert status == 202, body
    return str(body["id"])


def make_due(tenant: Any, command_id: str) -> None:
    """The scheduled command becomes due and a worker is woken for it."""
    with schema_context(tenant.schema_name), transaction.atomic():
        Command.objects.filter(pk=command_id).update(not_before=timezone.now())
    bus.enqueue(tenant.schema_name, uuid.UUID(command_id))


def test_parked_waits_of_several_users_do_not_hold_up_another_tenants_reads_or_health(world, live_db, web):
    waiters = [world["alice"], world["dave"], world["ada"]]
    sockets = []
    for persona in waiters:
        command_id = scheduled_command(web, persona.token)
        sockets += [
            web.park("GET", f"/t/acme/api/commands/{command_id}/?wait=30", persona.token) for _ in range(40)
        ]
    try:
        for persona in waiters:
            wait_until(lambda p=persona: waits.in_progress(str(p.user.pk)) == 40)

        read = web.request("GET", "/t/globex/api/commands/", world["bob"].token)
        health = web.request("GET", "/health/")

        assert read[0] == 200, read[1]
        assert health[0] == 200, health[1]
        # ... answered while all 120 waits (more than the 64 threads of the old tier) still wait.
        assert unanswered(sockets) == 120
        assert all(waits.in_progress(str(p.user.pk)) == 40 for p in waiters)
    finally:
        for sock in sockets:
            sock.close()
    # Clients that go away give their places back.
    for persona in waiters:
        wait_until(lambda p=persona: waits.in_progress(str(p.user.pk)) == 0)


@pytest.mark.worker
def test_a_parked_command_wait_answers_processed_once_a_worker_runs_it(world, live_db, web, celery_worker):
    dave = world["dave"]
    command_id = scheduled_command(web, dave.token)
    parked = web.park("GET", f"/t/acme/api/commands/{command_id}/?wait=30", dave.token)
    wait_until(lambda: waits.in_progress(str(dave.user.pk)) == 1)

    make_due(world.acme, command_id)
    status, headers, body = answer(parked)

    assert status == 200
    assert body["id"] == command_id
    assert body["status"] == "processed"
    assert headers["x-request-id"]
    assert waits.in_progress(str(dave.user.pk)) == 0


@pytest.mark.worker
def test_a_post_wait_keeps_its_202_and_a_replay_its_200_with_idempotent_replayed(
    world, live_db, web, celery_worker
):
    alice = world["alice"]
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "executeTest",
        "payload": {"testId": str(uuid.uuid4()), "testName": "post-wait"},
        "not_before": (timezone.now() + FAR_AHEAD).isoformat(),
    }
    parked = web.park("POST", "/t/acme/api/commands/?wait=30", alice.token, envelope)
    wait_until(lambda: waits.in_progress(str(alice.user.pk)) == 1)
    # The wait's slot is taken before the view stores the command: wait for the row too.
    with schema_context(world.acme.schema_name):
        stored = Command.objects.filter(pk=envelope["id"])
        wait_until(stored.exists)
        assert stored.count() == 1  # stored once, parked

    make_due(world.acme, envelope["id"])
    status, headers, body = answer(parked)

    assert status == 202
    assert "idempotent-replayed" not in headers
    assert body["status"] == "processed"
    with schema_context(world.acme.schema_name):
        assert Command.objects.filter(pk=envelope["id"]).count() == 1  # never submitted again

    # The same command again (already final: answered at once, not parked) ...
    status, body, response = web.request("POST", "/t/acme/api/commands/?wait=30", alice.token, envelope)
    assert status == 200
    assert response.getheader("Idempotent-Replayed") == "true"
    assert body["status"] == "processed"


def test_a_parked_post_wait_replay_answers_200_with_idempotent_replayed_at_its_deadline(world, live_db, web):
    alice = world["alice"]
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "executeTest",
        "payload": {"testId": str(uuid.uuid4()), "testName": "replay"},
        "not_before": (timezone.now() + FAR_AHEAD).isoformat(),
    }
    first = web.request("POST", "/t/acme/api/commands/", alice.token, envelope)
    assert first[0] == 202

    status, headers, body = answer(web.park("POST", "/t/acme/api/commands/?wait=1", alice.token, envelope))

    assert status == 200
    assert headers["idempotent-replayed"] == "true"
    assert body["id"] == envelope["id"]
    assert body["status"] == "pending"


def test_a_wait_whose_member_is_removed_mid_wait_is_refused_on_the_next_wake(world, live_db, web):
    password = f"wendy-{uuid.uuid4().hex}"
    user = get_user_model().objects.create_user(f"wendy-{uuid.uuid4().hex[:6]}", password=password)
    set_membership(user, world.acme, "developer")
    token = web.request("POST", "/api/auth/token/", body={"username": user.username, "password": password})[
        1
    ]["token"]
    command_id = scheduled_command(web, token)
    parked = web.park("GET", f"/t/acme/api/commands/{command_id}/?wait=30", token)
    wait_until(lambda: waits.in_progress(str(user.pk)) == 1)

    Membership.objects.filter(user=user, tenant=world.acme).delete()
    with transaction.atomic():  # wake it: as if the command had become final
        announcements.announce(world.acme.schema_name, [command_id])
    status, _, body = answer(parked)

    assert status == 403
    assert body["error"]["code"] == "not_a_member"
    assert waits.in_progress(str(user.pk)) == 0


def test_the_cap_answers_429_too_many_waits_across_two_web_processes(world, live_db, tmp_path):
    vera = world["vera"]
    owner = str(vera.user.pk)
    tiers = [
        WebTier(tmp_path / f"web-{n}.log", WAITS_PER_USER="4", WEB_WORKERS="1").start() for n in range(2)
    ]
    path = "/t/acme/api/read-models/system_status/?min_position=1000000000&wait=30"
    sockets = []
    try:
        for tier in tiers:  # two waits parked in each server
            sockets += [tier.park("GET", path, vera.token) for _ in range(2)]
        wait_until(lambda: waits.in_progress(owner) == 4)

        refusals = [tier.request("GET", path, vera.token) for tier in tiers]
        other_user = tiers[0].request(
            "GET", "/t/acme/api/read-models/system_status/?min_position=0&wait=1", world["dave"].token
        )

        for status, body, response in refusals:
            assert status == 429
            assert body["error"]["code"] == "too_many_waits"
            assert body["error"]["details"] == {"limit": 4}
            assert body["error"]["request_id"]
            assert int(response.getheader("Retry-After")) >= 1
        assert other_user[0] == 200  # other users are unaffected
        assert unanswered(sockets) == 4
    finally:
        for sock in sockets:
            sock.close()
        for tier in tiers:
            tier.stop()
