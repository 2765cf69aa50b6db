"""Throttles (shared Redis counters, 429 + Retry-After in the error shape) and the login
lockout (django-axes: after LOGIN_FAILURE_LIMIT failures even the right password is refused).

Throttles are off in the test session (tests/conftest.py); each test here sets small rates
and starts from empty counters.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import redis
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.test import Client
from django.utils import timezone

from intent_project.api.throttling import WindowThrottle
from tests.api.helpers import TOKEN_URL, assert_error, client_for, command_count, commands_url, send

OFF = {"login_username": "", "login_ip": "", "commands_user": "", "commands_tenant": ""}


@pytest.fixture
def rates(settings, monkeypatch):
    """Set THROTTLE_RATES for one test, with every counter of the test Redis database reset
    and the throttles' clock held, so a test never straddles two windows."""
    frozen = time.time()
    monkeypatch.setattr(WindowThrottle, "timer", staticmethod(lambda: frozen))
    client = redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])
    for key in client.scan_iter(match="*throttle:*"):
        client.delete(key)

    def set_rates(**given: str) -> None:
        settings.THROTTLE_RATES = {**OFF, **given}

    return set_rates


@pytest.fixture
def login_failures():
    """How many logins reached the password check and failed (Django's own signal)."""
    seen: list[str] = []

    def record(sender, credentials, **kwargs):
        seen.append(credentials.get("username"))

    user_login_failed.connect(record)
    yield seen
    user_login_failed.disconnect(record)


def wrong_login(username: str, address: str = "10.0.0.1", **extra):
    return client_for().post(
        TOKEN_URL,
        {"username": username, "password": "wrong-guess-123"},
        format="json",
        REMOTE_ADDR=address,
        **extra,
    )


def right_login(world, name: str, address: str = "10.0.0.1"):
    return client_for().post(
        TOKEN_URL, {"username": name, "password": world[name].password}, format="json", REMOTE_ADDR=address
    )


def assert_throttled(response) -> None:
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1


# --- login throttles -------------------------------------------------------------------------
def test_login_attempts_per_username_are_throttled_before_the_password_is_checked(
    world, rates, login_failures
):
    rates(login_username="3/min")

    answers = [wrong_login("dave", address=f"10.0.0.{i}") for i in range(6)]

    assert [a.status_code for a in answers] == [400, 400, 400, 429, 429, 429]
    assert_throttled(answers[3])
    assert login_failures == ["dave"] * 3  # the throttled attempts never reached the hasher
    assert_throttled(right_login(world, "dave", address="10.0.0.99"))  # the right password too
    assert right_login(world, "alice").status_code == 200  # another username is not affected


def test_the_username_throttle_ignores_case_and_spaces(world, rates):
    rates(login_username="2/min")

    for variant in ("dave", "DAVE"):
        wrong_login(variant)

    assert_throttled(wrong_login(" Dave "))


def test_login_attempts_per_address_are_throttled_whatever_the_username(world, rates, login_failures):
    rates(login_ip="3/min")

    answers = [wrong_login(f"user{i}", address="10.9.9.9") for i in range(5)]

    assert [a.status_code for a in answers] == [400, 400, 400, 429, 429]
    assert len(login_failures) == 3
    assert right_login(world, "dave", address="10.9.9.10").status_code == 200


def test_a_forged_forwarded_for_header_does_not_give_a_fresh_address(world, rates):
    rates(login_ip="2/min")

    answers = [
        wrong_login(f"user{i}", address="10.9.9.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}") for i in range(3)
    ]

    assert_throttled(answers[2])


# --- command throttles -----------------------------------------------------------------------
def test_command_submissions_per_user_are_throttled_and_reads_are_not(world, rates):
    rates(commands_user="2/min")
    dave = client_for(world["dave"])
    before = command_count(world.acme)

    answers = [send(dave, "logMessage", {"message": str(i)}) for i in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert_throttled(answers[2])
    assert command_count(world.acme) == before + 2  # the refused one stored nothing
    assert dave.get(commands_url()).status_code == 200
    assert send(client_for(world["alice"]), "logMessage", {"message": "mine"}).status_code == 202


def test_command_submissions_per_tenant_are_throttled_across_users(world, rates):
    rates(commands_tenant="2/min")
    before = command_count(world.acme)

    answers = [
        send(client_for(world[name]), "logMessage", {"message": name}) for name in ("dave", "ada", "abe")
    ]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert command_count(world.acme) == before + 2
    other = send(client_for(world["bob"]), "logMessage", {"message": "globex"}, tenant="globex")
    assert other.status_code == 202  # another tenant has its own counter


def test_a_non_member_is_refused_before_it_counts_against_the_tenant(world, rates):
    rates(commands_tenant="1/min")

    assert_error(send(client_for(world["bob"]), "logMessage", {"message": "x"}), 403, "not_a_member")
    assert send(client_for(world["dave"]), "logMessage", {"message": "x"}).status_code == 202


# --- lockout (django-axes) -------------------------------------------------------------------
@pytest.fixture
def fresh_user(world):
    name = "lock-" + uuid.uuid4().hex[:8]
    user = get_user_model().objects.create_user(name, password="the-right-password-42", is_staff=True)
    return user


def test_150_wrong_passwords_then_the_right_one_is_refused_on_the_api(world, fresh_user):
    for _ in range(150):
        assert wrong_login(fresh_user.username).status_code in (400, 429)

    response = client_for().post(
        TOKEN_URL, {"username": fresh_user.username, "password": "the-right-password-42"}, format="json"
    )

    assert_error(response, 429, "locked_out")
    assert int(response["Retry-After"]) == int(django_settings.AXES_COOLOFF_TIME.total_seconds())


def test_a_locked_out_login_answers_the_same_for_an_unknown_username(world):
    ghost = "ghost-" + uuid.uuid4().hex[:8]
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        wrong_login(ghost)

    error = assert_error(wrong_login(ghost), 429, "locked_out")

    assert ghost not in error["message"]


@pytest.mark.parametrize("login_url", ["/admin/login/", "/t/acme/admin/login/"])
def test_150_wrong_passwords_then_the_right_one_is_refused_on_the_admin_logins(world, fresh_user, login_url):
    browser = Client()
    for _ in range(150):
        browser.post(login_url, {"username": fresh_user.username, "password": "wrong-guess-123"})

    response = browser.post(login_url, {"username": fresh_user.username, "password": "the-right-password-42"})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "locked_out"
    assert "_auth_user_id" not in browser.session


def test_the_lockout_ends_after_the_cool_off(world, fresh_user):
    seen: list[object] = []
    user_logged_in.connect(lambda sender, user, **kw: seen.append(user), weak=False, dispatch_uid="t-cool")
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        wrong_login(fresh_user.username)
    right = {"username": fresh_user.username, "password": "the-right-password-42"}
    assert client_for().post(TOKEN_URL, right, format="json").status_code == 429

    AccessAttempt.objects.filter(username=fresh_user.username).update(
        attempt_time=timezone.now() - django_settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert client_for().post(TOKEN_URL, right, format="json").status_code == 200
    user_logged_in.disconnect(dispatch_uid="t-cool")


def test_with_the_shared_cache_down_commands_are_still_stored(world, rates, settings):
    """Throttles fail open: a Redis outage must not refuse what the database can store."""
    rates(commands_user="1/min", commands_tenant="1/min")
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    dave = client_for(world["dave"])
    before = command_count(world.acme)

    answers = [send(dave, "logMessage", {"message": str(i)}) for i in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert command_count(world.acme) == before + 3
