"""Web processes cache tenant, membership and API-token lookups briefly; changes made in
the same process are seen at once, and the cache never outlives TENANT_CACHE_SECONDS."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from intent_project.tenants import lookups
from intent_project.tenants.services import set_membership
from tests.api.helpers import client_for, commands_url


@pytest.fixture
def caching(settings):
    settings.TENANT_CACHE_SECONDS = 60
    caches = (lookups.tenants_by_domain, lookups.roles, lookups.tokens)
    for cache in caches:
        cache.clear()
    yield settings
    for cache in caches:
        cache.clear()


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
    assert any("authtoken_token" in q for q in first)
    assert not any(
        table in q for q in second for table in ("tenants_domain", "tenants_membership", "authtoken")
    )


def test_a_token_deleted_in_this_process_stops_working_at_once(world, caching):
    client = client_for(world["vera"])
    assert client.get(commands_url()).status_code == 200  # cached now
    Token.objects.filter(key=world["vera"].token).delete()  # a queryset delete sends post_delete too
    answer = client.get(commands_url())
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"


def test_a_user_deactivated_in_this_process_is_refused_at_once(world, caching):
    user = world["alice"].user
    alice = client_for(world["alice"])
    assert alice.get(commands_url()).status_code == 200  # cached now
    user.is_active = False
    user.save()
    assert alice.get(commands_url()).status_code == 401


def test_each_request_gets_its_own_copy_of_the_cached_user(world, caching):
    from intent_project.api.authentication import CachedTokenAuthentication

    auth = CachedTokenAuthentication()
    first, _ = auth.authenticate_credentials(world["alice"].token)
    first.some_request_state = "mine"
    second, _ = auth.authenticate_credentials(world["alice"].token)
    assert second is not first and second.pk == first.pk
    assert not hasattr(second, "some_request_state")


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
