"""Input that used to slip through or break things: forged cursor positions (500), an
integer command id (turned into a uuid), duplicate JSON keys (last one won), label keys of
any length and charset. Each is refused in the error shape and stores nothing."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.api.helpers import (
    assert_error,
    assert_field_error,
    client_for,
    commands_url,
    funded_account,
    post_json,
    read_model_url,
    send,
    stores_no_command,
)


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


# --- cursors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "o=1&p=notanumber",  # account_statement orders by an integer position
        "o=0&r=0&p=1.5",
        "o=0&r=1&p=99999999999999999999999",  # beyond bigint
        "o=0&p=-99999999999999999999999",
        "p=1e3",
        "p=%00",  # a NUL byte, url-encoded inside the cursor
        "p=" + "9" * 5000,
    ],
)
def test_a_forged_cursor_position_on_account_statement_is_a_400(world, query):
    response = client_for(world["ada"]).get(f"{read_model_url('account_statement')}?cursor={_cursor(query)}")

    assert_field_error(response, 400, "validation_error", "cursor")


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("account_balances", "p=not-a-uuid"),  # ordered by a uuid
        ("transfers", "p=12"),
        ("bank_totals", "p=EUR%00"),  # ordered by text
    ],
)
def test_a_forged_cursor_position_is_a_400_on_every_read_model(world, name, query):
    response = client_for(world["ada"]).get(f"{read_model_url(name)}?cursor={_cursor(query)}")

    assert_field_error(response, 400, "validation_error", "cursor")


@pytest.mark.parametrize("query", ["p=yesterday", "p=2024-13-45T99:00:00", "p=%00"])
def test_a_forged_cursor_position_on_the_command_list_is_a_400(world, query):
    response = client_for(world["dave"]).get(f"{commands_url()}?cursor={_cursor(query)}")

    assert_field_error(response, 400, "validation_error", "cursor")


def test_a_genuine_cursor_still_pages_account_statement(world):
    bea = client_for(world["bea"])
    account = funded_account(bea, world.acme, 10, 20, 30)
    url = f"{read_model_url('account_statement')}?account_id={account}&limit=2"
    seen, pages = [], 0
    while url:
        page = bea.get(url)
        assert page.status_code == 200, page.json()
        seen += [row["amount"] for row in page.json()["results"]]
        url, pages = page.json()["next"], pages + 1
    assert (sorted(seen), pages) == ([10, 20, 30], 2)


# --- the command id -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad_id", [12345, 0, True, 1.5, ["6f1c1b8e-2f4e-4d59-9a57-3f0c1e7b9d10"], {}])
def test_a_command_id_that_is_not_a_uuid_string_is_refused(world, bad_id):
    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "logMessage", {"message": "x"}, id=bad_id)

    assert_field_error(response, 400, "validation_error", "id")


@pytest.mark.parametrize("field", ["correlation_id", "causation_id"])
def test_a_flow_id_that_is_not_a_uuid_string_is_refused(world, field):
    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "logMessage", {"message": "x"}, metadata={field: 12345})

    error = assert_field_error(response, 400, "validation_error", "metadata")
    assert field in error["details"]["fields"]["metadata"]


def test_a_command_id_as_a_uuid_string_is_kept(world):
    wanted = str(uuid.uuid4())

    response = send(client_for(world["dave"]), "logMessage", {"message": "x"}, id=wanted)

    assert response.status_code == 202
    assert response.json()["id"] == wanted


# --- duplicate keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"type": "logMessage", "type": "simulateFailure", "payload": {"message": "x"}}', "type"),
        ('{"type": "logMessage", "payload": {"message": "a", "message": "b"}}', "message"),
        ('{"type": "logMessage", "payload": {"message": "a"}, "metadata": {"labels": {"k": "1", "k": "2"}}}', "k"),
        ('{"type": "executeTest", "payload": {"testId": "6f1c1b8e-2f4e-4d59-9a57-3f0c1e7b9d10", '
         '"testName": "t", "parameters": {"deep": [{"x": 1, "x": 2}]}}}', "x"),
    ],
)  # fmt: skip
def test_a_json_object_with_a_key_twice_is_refused_naming_the_key(world, body, key):
    with stores_no_command(world.acme):
        response = post_json(client_for(world["dave"]), commands_url(), body)

    error = assert_error(response, 400, "malformed_request")
    assert repr(key) in error["message"]


def test_the_same_key_in_different_objects_is_fine(world):
    body = json.dumps(
        {"type": "logMessage", "payload": {"message": "x"}, "metadata": {"labels": {"type": "a"}}}
    )

    assert post_json(client_for(world["dave"]), commands_url(), body).status_code == 202


# --- label keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["", "k" * 65, "has space", "quote'", "new\nline", "end\n", "ünï", "<b>", "a;b"]
)
def test_a_label_key_outside_the_safe_charset_or_length_is_refused(world, key):
    with stores_no_command(world.acme):
        response = send(
            client_for(world["dave"]), "logMessage", {"message": "x"}, metadata={"labels": {key: "v"}}
        )

    error = assert_field_error(response, 400, "validation_error", "metadata")
    assert "labels" in error["details"]["fields"]["metadata"]


@pytest.mark.parametrize("key", ["k", "k" * 64, "app.kubernetes.io/name", "team:payments", "a_b-c"])
def test_a_label_key_in_the_safe_charset_is_kept(world, key):
    response = send(
        client_for(world["dave"]), "logMessage", {"message": "x"}, metadata={"labels": {key: "v"}}
    )

    assert response.status_code == 202, response.json()
    assert response.json()["metadata"]["labels"] == {key: "v"}
