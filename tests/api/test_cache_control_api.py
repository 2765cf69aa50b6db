"""API answers are never stored by a browser or a proxy: `Cache-Control: no-store` on
every /api/ and /t/<tenant>/api/ response, errors included."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import (
    TOKEN_URL,
    assert_error,
    client_for,
    commands_url,
    project,
    read_model_url,
    submit_and_process,
)


def test_a_balance_is_answered_with_no_store(world):
    bea = client_for(world["bea"])
    account = str(uuid.uuid4())
    submit_and_process(
        bea, "openAccount", {"accountId": account, "owner": "Bea", "currency": "EUR"}, world.acme
    )
    submit_and_process(bea, "depositMoney", {"accountId": account, "amount": 1250}, world.acme)
    project(world.acme)

    for url in (read_model_url("account_balances"), read_model_url("account_balances", account)):
        response = bea.get(url)
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store", url
    assert response.json()["balance"] == 1250


@pytest.mark.parametrize(
    ("persona", "url", "status", "code"),
    [
        ("bea", read_model_url("account_balances", str(uuid.uuid4())), 404, "not_found"),
        (None, read_model_url("account_balances"), 401, "not_authenticated"),
        ("bob", read_model_url("account_balances"), 403, "not_a_member"),
        ("bea", "/t/no-such-tenant/api/commands/", 404, "tenant_not_found"),
        ("bea", "/t/acme/api/commands/%00/", 400, "bad_request"),
        ("bea", "/api/tenants/no-such-tenant/members/", 404, "not_found"),
        ("bea", "/api/nothing-here/", 404, "not_found"),
    ],
)
def test_an_api_error_is_answered_with_no_store(world, persona, url, status, code):
    response = client_for(world[persona] if persona else None).get(url)

    assert response.status_code == status, response.content[:300]
    assert response["Cache-Control"] == "no-store"


def test_a_refused_login_and_a_refused_command_are_answered_with_no_store(world):
    login = client_for().post(TOKEN_URL, {"username": "bea", "password": "wrong"}, format="json")
    command = client_for(world["vera"]).post(commands_url(), {"type": "nope", "payload": {}}, format="json")

    assert login.status_code == 400 and command.status_code in (400, 403)
    assert (login["Cache-Control"], command["Cache-Control"]) == ("no-store", "no-store")


def test_pages_outside_the_api_keep_their_own_caching(world):
    response = client_for().get("/health/")

    assert "no-store" not in response.get("Cache-Control", "")
    assert_error(client_for().get("/t/acme/api/commands/"), 401, "not_authenticated")
