"""A write to an API route without its trailing slash reaches the route: Django's APPEND_SLASH
redirect would lose the body (clients re-send a 301/302 as a GET) and answers nothing
useful. Reads still redirect to the canonical URL."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    TOKEN_URL,
    assert_error,
    client_for,
    commands_url,
    members_url,
    stored_command,
)

COMMAND = {"type": "logMessage", "payload": {"message": "no slash"}}


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_a_command_posted_without_the_slash_is_stored(world, settings, debug):
    settings.DEBUG = debug  # under DEBUG, APPEND_SLASH raises on a POST instead of redirecting

    response = client_for(world["dave"]).post(commands_url().rstrip("/"), COMMAND, format="json")

    assert response.status_code == 202, response.content[:300]
    assert stored_command(world.acme, response.json()["id"]).payload["message"] == "no slash"


def test_a_login_posted_without_the_slash_gives_a_token(world):
    persona = world["alice"]
    credentials = {"username": persona.username, "password": persona.password}

    response = client_for().post(TOKEN_URL.rstrip("/"), credentials, format="json")

    assert response.status_code == 200 and response.json()["token"]


def test_a_membership_changed_and_removed_without_the_slash(world):
    client = client_for(world["root"])
    member = members_url("acme") + "vera"

    changed = client.patch(member, {"role": "tester"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "tester"
    assert client.delete(member).status_code == 204


def test_a_read_without_the_slash_is_redirected_to_the_canonical_url(world):
    response = client_for(world["dave"]).get(commands_url().rstrip("/"))

    assert response.status_code == 301
    assert response["Location"] == commands_url()


def test_a_write_to_a_path_that_is_no_route_either_way_is_a_404(world):
    response = client_for(world["dave"]).post("/t/acme/api/nothing-here", COMMAND, format="json")

    assert_error(response, 404, "not_found")
