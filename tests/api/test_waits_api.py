"""The cap on concurrent waits per user, through the API (plain WSGI: waits block here, as
under `manage.py runserver`; tests/integration/test_fair_waiting.py runs the front door)."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from intent_project import waits
from tests.api.helpers import (
    assert_error,
    command_url,
    commands_url,
    execute_test,
    read_model_url,
    send,
    stores_no_command,
)

LIMIT = 2


@pytest.fixture
def capped(settings, isolated_redis):
    settings.WAITS_PER_USER = LIMIT


@pytest.fixture
def dave_is_at_the_cap(world, capped):
    """dave already holds all his places (waits in progress in other requests)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"intent:waits:{world['dave'].user.pk}"
    client.zadd(key, {f"elsewhere-{i}": time.time() + 60 for i in range(LIMIT)})
    yield
    client.delete(key)


def test_a_wait_beyond_the_cap_is_refused_with_429_too_many_waits_and_retry_after(world, dave_is_at_the_cap):
    dave = world["dave"].client()
    command = send(dave, "executeTest", execute_test()).json()

    response = dave.get(command_url(command["id"]) + "?wait=1")

    error = assert_error(response, 429, "too_many_waits")
    assert error["details"] == {"limit": LIMIT}
    assert int(response["Retry-After"]) >= 1


def test_a_post_wait_beyond_the_cap_stores_no_command(world, dave_is_at_the_cap):
    dave = world["dave"].client()
    with stores_no_command(world.acme):
        response = dave.post(
            commands_url() + "?wait=1", {"type": "executeTest", "payload": execute_test()}, format="json"
        )
    assert_error(response, 429, "too_many_waits")


def test_a_read_your_writes_wait_beyond_the_cap_is_refused(world, dave_is_at_the_cap):
    response = world["dave"].client().get(read_model_url("system_status") + "?min_position=0&wait=1")

    assert_error(response, 429, "too_many_waits")


def test_a_user_at_the_cap_can_still_read_without_waiting(world, dave_is_at_the_cap):
    dave = world["dave"].client()
    command = send(dave, "executeTest", execute_test()).json()

    assert dave.get(command_url(command["id"])).status_code == 200
    assert dave.get(command_url(command["id"]) + "?wait=0").status_code == 200


def test_other_users_are_unaffected_by_one_user_at_the_cap(world, dave_is_at_the_cap):
    alice = world["alice"].client()
    command = send(alice, "executeTest", execute_test()).json()

    response = alice.get(command_url(command["id"]) + "?wait=0.1")

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_a_wait_gives_its_place_back_when_it_answers(world, capped):
    alice = world["alice"]
    command = send(alice.client(), "executeTest", execute_test()).json()

    for _ in range(LIMIT + 1):  # one after the other: never more than one at a time
        assert alice.client().get(command_url(command["id"]) + "?wait=0.1").status_code == 200

    assert waits.in_progress(str(alice.user.pk)) == 0


def test_waits_refused_for_access_take_no_place(world, capped):
    bob = world["bob"]  # not a member of acme
    path = command_url("00000000-0000-0000-0000-000000000000") + "?wait=1"

    assert_error(APIClient().get(path), 401, "not_authenticated")
    assert_error(bob.client().get(path), 403, "not_a_member")
    assert waits.in_progress(str(bob.user.pk)) == 0
