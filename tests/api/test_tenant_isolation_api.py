"""Tenants over HTTP: a member of globex sees nothing of acme, and bad tenant paths are 404s."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import (
    assert_error,
    assert_tenant_not_found,
    client_for,
    command_url,
    commands_url,
    events_url,
    projections_url,
    read_model_url,
    send,
    stores_no_command,
    submit_and_process,
)

ACME_READS = [
    commands_url("acme"),
    command_url(uuid.UUID("2c1b0a9f-8e7d-4c6b-a5f4-e3d2c1b0a9f8"), "acme"),
    events_url("acme"),
    events_url("acme") + "7e6d5c4b-3a29-4f18-b7e6-d5c4b3a29f18/",
    read_model_url("system_status", tenant="acme"),
    read_model_url("system_metrics", "tenant", tenant="acme"),
    projections_url("acme"),
]


@pytest.mark.parametrize("url", ACME_READS)
def test_a_member_of_globex_cannot_read_acme(world, url):
    assert_error(client_for(world["bob"]).get(url), 403, "not_a_member")


def test_a_member_of_globex_cannot_send_to_acme(world):
    with stores_no_command(world.acme):
        assert_error(
            send(client_for(world["bob"]), "logMessage", {"message": "hi"}, tenant="acme"),
            403,
            "not_a_member",
        )


def test_a_globex_command_is_not_found_through_acme(world):
    command = send(client_for(world["bob"]), "logMessage", {"message": "globex only"}, tenant="globex").json()

    response = client_for(world["ada"]).get(command_url(command["id"], "acme"))

    assert_error(response, 404, "not_found")
    assert client_for(world["bob"]).get(command_url(command["id"], "globex")).status_code == 200


def test_globex_events_are_not_in_the_acme_log(world):
    command = submit_and_process(
        client_for(world["bob"]), "logMessage", {"message": "globex only"}, world.globex
    )
    globex_event = (
        client_for(world["bob"])
        .get(events_url("globex") + f"?correlation_id={command['id']}")
        .json()["results"][0]
    )
    ada = client_for(world["ada"])

    assert ada.get(events_url("acme") + f"?correlation_id={command['id']}").json()["results"] == []
    assert_error(ada.get(events_url("acme") + f"{globex_event['id']}/"), 404, "not_found")


def test_a_superuser_reads_any_tenant_but_sends_to_none(world):
    root = client_for(world["root"])

    for slug in ("acme", "globex"):
        assert root.get(commands_url(slug)).status_code == 200
        assert_error(send(root, "logMessage", {"message": "hi"}, tenant=slug), 403, "not_a_member")


@pytest.mark.parametrize(
    "path",
    [
        "/t/nope/api/commands/",
        "/t/A;DROP/api/",
        "/t/acme'--/api/commands/",
        "/t/public/api/commands/",
        "/t//api/commands/",
        "/t/" + "a" * 300 + "/api/commands/",
    ],
)
def test_a_path_that_names_no_tenant_is_a_404(world, path):
    assert_tenant_not_found(client_for(world["root"]).get(path))


def test_posting_to_an_unknown_tenant_is_a_404(world):
    assert_tenant_not_found(send(client_for(world["dave"]), "logMessage", {"message": "hi"}, tenant="nope"))


def test_tenant_endpoints_do_not_exist_outside_a_tenant(world):
    assert_error(client_for(world["dave"]).get("/api/commands/"), 404, "not_found")


def test_public_endpoints_do_not_exist_inside_a_tenant(world):
    assert_error(client_for(world["dave"]).get("/t/acme/api/registry/"), 404, "not_found")


def test_an_unknown_tenant_error_carries_the_request_id(world):
    assert_error(client_for(world["dave"]).get("/t/nope/api/commands/"), 404, "tenant_not_found")
