"""Web processes cache the /t/<slug>/ -> tenant lookup briefly; roles and API tokens are
never cached, so a revoked token or a removed role is refused at once (in every process:
tests/integration/test_two_web_processes.py)."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken

from intent_project.tenants import lookups
from intent_project.tenants.services import set_membership
from tests.api.helpers import client_for, commands_url


@pytest.fixture
def caching(settings):
    settings.TENANT_CACHE_SECONDS = 60
    lookups.tenants_by_domain.clear()
    yield settings
    lookups.tenants_by_domain.clear()


def _queries_of(client, path):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_a_second_request_skips_the_tenant_query_but_reads_token_and_role_again(world, caching):
    alice = client_for(world["alice"])
    first = _queries_of(alice, commands_url())
    second = _queries_of(alice, commands_url())

    assert any("tenants_domain" in q for q in first)
    assert not any("tenants_domain" in q for q in second)
    for queries in (first, second):
        assert sum("knox_authtoken" in q for q in queries) == 1  # token joined with its user
        assert sum("tenants_membership" in q for q in queries) == 1


def test_a_token_deleted_stops_working_at_once(world, caching):
    client = client_for(world["vera"])
    assert client.get(commands_url()).status_code == 200
    AuthToken.objects.filter(user=world["vera"].user).delete()
    answer = client.get(commands_url())
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"


def test_a_deactivated_user_is_refused_at_once(world, caching):
    user = world["alice"].user
    alice = client_for(world["alice"])
    assert alice.get(commands_url()).status_code == 200
    user.is_active = False
    user.save()
    assert alice.get(commands_url()).status_code == 401


def test_a_membership_change_takes_effect_at_once(world, caching):
    vera = client_for(world["vera"])
    assert vera.get(commands_url()).status_code == 200  # a viewer
    membership, _ = set_membership(world["vera"].user, world.acme, "tester")
    sent = vera.post(commands_url(), {"type": "logMessage", "payload": {"message": "hi"}}, format="json")
    assert sent.status_code == 202, sent.json()
    membership.delete()
    assert vera.get(commands_url()).json()["error"]["code"] == "not_a_member"


def test_entries_expire(world, caching):
    caching.TENANT_CACHE_SECONDS = 0.2
    alice = client_for(world["alice"])
    _queries_of(alice, commands_url())
    time.sleep(0.3)
    assert any("tenants_domain" in q for q in _queries_of(alice, commands_url()))
