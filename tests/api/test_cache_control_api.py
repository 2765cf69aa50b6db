"""API answers are never stored by a browser or a proxy: `Cache-Control: no-store` on
every /api/ and /t/<tenant>/api/ response, errors included."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    TOKEN_URL,
    assert_error,
    client_for,
    commands_url,
    funded_account,
    read_model_url,
)


def test_a_balance_is_answered_with_no_store(world):
    bea = client_for(world["bea"])
    account = funded_account(bea, world.acme, 1250)

    for url in (read_model_url("account_balances"), read_model_url("account_balances", account)):
        response = bea.get(url)
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store", url
    assert response.json()["balance"] == 1250


@pytest.mark.parametrize(
    ("persona", "url"),
    [
        (
            "ada",
            read_model_url("account_balances", "5b9f1c1e-3a53-4c36-9d0e-0c1d2a3b4c5d"),
        ),  # no such account
        (None, read_model_url("account_balances")),  # not authenticated
        ("bob", read_model_url("account_balances")),  # another tenant's member
        ("ada", "/t/no-such-tenant/api/commands/"),  # answered by the tenant middleware
        ("ada", "/t/acme/api/commands/%00/"),  # answered by the request-id middleware
        ("ada", "/api/tenants/no-such-tenant/members/"),
        ("ada", "/api/nothing-here/"),
    ],
)
def test_an_api_error_is_answered_with_no_store(world, persona, url):
    response = client_for(world[persona] if persona else None).get(url)

    assert response.status_code >= 400, response.content[:300]
    assert set(response.json()) == {"error"}
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
