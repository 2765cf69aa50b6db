"""Web processes cache tenant and membership lookups briefly; changes made in the same
process are seen at once, and the cache never outlives TENANT_CACHE_SECONDS."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from intent_project.tenants import lookups
from intent_project.tenants.services import set_membership
from tests.api.helpers import client_for, commands_url


@pytest.fixture
def caching(settings):
    settings.TENANT_CACHE_SECONDS = 60
    lookups.tenants_by_domain.clear()
    lookups.roles.clear()
    yield settings
    lookups.tenants_by_domain.clear()
    lookups.roles.clear()


def _queries_of(client, path):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_a_second_request_skips_the_tenant_and_membership_queries(world, caching):
    alice = client_for(world["alice"])
    first = _queries_of(alice, commands_url())
    second = _queries_of(alice, commands_url())

    assert any("tenants_domain" in q for q in first)
    assert any("tenants_membership" in q for q in first)
    assert not any("tenants_domain" in q or "tenants_membership" in q for q in second)


def test_a_membership_changed_in_this_process_takes_effect_at_once(world, caching):
    vera = client_for(world["vera"])
    assert vera.get(commands_url()).status_code == 200  # cached: viewer
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
