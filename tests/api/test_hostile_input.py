"""Input chosen to break things: NUL bytes, lone surrogates, deep nesting, forged cursors,
SQL-looking strings, and random JSON. None of it may become a 500; every refusal has the
error shape and stores nothing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import (
    assert_error,
    client_for,
    commands_url,
    events_url,
    execute_test,
    members_url,
    post_json,
    read_model_url,
    send,
    stores_no_command,
)


# --- accepted as plain data --------------------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    ["' OR 1=1 --", "<script>alert(1)</script>", "emoji 🚀 and ümlauts", "tab\tnewline\n", "\u202eRTL"],
)
def test_text_that_looks_dangerous_is_stored_as_text(world, message):
    dave = client_for(world["dave"])

    command = send(dave, "logMessage", {"message": message}).json()

    assert dave.get(f"{commands_url()}{command['id']}/").json()["payload"] == {
        "message": message,
        "level": "info",
    }


@pytest.mark.parametrize("value", ["' OR 1=1 --", "logMessage; DROP TABLE commands_app_command", "%", "_"])
def test_sql_looking_filters_match_nothing(world, value):
    dave = client_for(world["dave"])
    send(dave, "logMessage", {"message": "present"})

    for url in (
        commands_url() + "?type=",
        events_url() + "?type=",
        read_model_url("system_status") + "?last_result=",
    ):
        response = dave.get(url + value)
        assert response.status_code == 200
        assert response.json()["results"] == []


def test_an_invalid_utf8_body_is_malformed(world):
    with stores_no_command(world.acme):
        response = post_json(
            client_for(world["dave"]),
            commands_url(),
            b'{"type": "logMessage", "payload": {"message": "\xff"}}',
        )

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("persona", "url", "body"),
    [
        ("root", "/api/auth/token/", {"username": "da\x00ve", "password": "x"}),
        ("root", "/api/tenants/", {"slug": "nul\x00", "name": "x"}),
        ("root", "/api/tenants/", {"slug": "nulname", "name": "a\x00b"}),
        ("root", "/api/tenants/acme/members/", {"username": "bo\x00b", "role": "viewer"}),
        ("dave", "/t/acme/api/commands/", {"type": "log\x00Message", "payload": {}}),
        ("dave", "/t/acme/api/commands/", {"type": "logMessage", "payload": {"message": "a\x00b"}}),
        (
            "dave",
            "/t/acme/api/commands/",
            {"type": "executeTest", "payload": {**execute_test(), "parameters": {"\x00": 1}}},
        ),
        (
            "dave",
            "/t/acme/api/commands/",
            {"type": "logMessage", "payload": {"message": "hi"}, "metadata": {"labels": {"a\x00": "b"}}},
        ),
    ],
)
def test_a_nul_character_anywhere_in_a_json_body_is_a_malformed_request(world, persona, url, body):
    with stores_no_command(world.acme):
        response = client_for(world[persona]).post(url, body, format="json")

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("url", "raw", "field"),
    [
        ("/api/auth/token/", '{"username": "\\ud800", "password": "x"}', "username"),
        ("/api/auth/token/", '{"username": "dave", "password": "\\udfff"}', "password"),
        ("/api/tenants/", '{"slug": "surrogate", "name": "\\ud800"}', "name"),
    ],
)
def test_lone_surrogates_anywhere_in_a_body_are_malformed_requests(world, url, raw, field):
    # UTF-8 cannot encode a lone surrogate; the parser refuses it before any field is read.
    assert_error(post_json(client_for(world["root"]), url, raw), 400, "malformed_request")


# --- bodies that used to reach the database or the serializer and fail there -------------------
def test_a_lone_surrogate_in_a_payload_is_a_malformed_request(world):
    with stores_no_command(world.acme):
        response = post_json(
            client_for(world["dave"]),
            commands_url(),
            '{"type": "logMessage", "payload": {"message": "a\\ud800b"}}',
        )

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize("url", ["/t/acme/api/commands/", "/api/auth/token/"])
def test_absurdly_deep_json_is_a_malformed_request(world, url):
    raw = '{"type": "logMessage", "payload": ' + "[" * 1_000 + "]" * 1_000 + "}"

    with stores_no_command(world.acme):
        response = post_json(client_for(world["dave"]), url, raw)

    assert_error(response, 400, "malformed_request")


def test_deeply_nested_parameters_are_a_malformed_request(world):
    raw = json.dumps(
        {"type": "executeTest", "payload": {**execute_test(), "parameters": {"a": "PLACEHOLDER"}}}
    )
    raw = raw.replace('"PLACEHOLDER"', "[" * 300 + "]" * 300)

    with stores_no_command(world.acme):
        response = post_json(client_for(world["dave"]), commands_url(), raw)

    assert_error(response, 400, "malformed_request")
    assert "nested deeper" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("persona", "url"),
    [
        ("dave", commands_url() + "?type=%00"),
        ("dave", events_url() + "?type=%00"),
        ("dave", events_url() + "?aggregate_type=x%00y"),
        ("dave", read_model_url("system_status") + "?last_result=%00"),
        ("dave", read_model_url("system_metrics", "%00")),
        ("stan", members_url("%00")),
        ("dave", "/t/%00/api/commands/"),
    ],
)
def test_a_nul_byte_in_a_url_is_a_bad_request(world, persona, url):
    assert_error(client_for(world[persona]).get(url), 400, "bad_request")


def _cursor(position: str) -> str:
    return base64.b64encode(f"o=0&r=0&p={position}".encode()).decode()


@pytest.mark.parametrize("url", [commands_url(), read_model_url("system_status")])
def test_a_forged_cursor_is_refused(world, url):
    assert_error(client_for(world["dave"]).get(f"{url}?cursor={_cursor('garbage')}"), 400, "validation_error")


# --- random bodies -----------------------------------------------------------------------------
# Lone surrogates, deep nesting and NUL are left out: the parser refuses each outright
# (tested above), which would hide everything behind it. Everything else must answer 2xx or the error shape.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
TYPES = st.sampled_from(
    ["logMessage", "simulateFailure", "emitMultipleEvents", "executeTest", "executeRetryableTest", "", "nope"]
)
PAYLOADS = (
    JSON
    | st.fixed_dictionaries({"message": JSON | TEXT})
    | st.fixed_dictionaries({"count": JSON | st.integers(-5, 200)})
    | st.fixed_dictionaries(
        {"testId": st.uuids().map(str) | JSON, "testName": TEXT | JSON},
        optional={"parameters": JSON, "systemId": st.uuids().map(str) | JSON, "extra": JSON},
    )
)
METADATA = st.dictionaries(
    st.sampled_from(["correlation_id", "causation_id", "labels", "role", "user_id"]) | TEXT,
    st.uuids().map(str) | st.dictionaries(TEXT, TEXT | st.integers(), max_size=3) | JSON,
    max_size=3,
)
OFFSETS = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
    lambda d: timezone(timedelta(minutes=d // timedelta(minutes=1)))
)
DATETIMES = st.datetimes(timezones=OFFSETS).map(lambda d: d.isoformat())
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "type": TYPES | JSON,
        "payload": PAYLOADS,
        "id": st.uuids().map(str) | st.sampled_from(["1", "00000000-0000-0000-0000-000000000000"]) | JSON,
        "metadata": st.none() | st.lists(JSON, max_size=2) | TEXT | st.integers() | METADATA,
        "not_before": st.none() | DATETIMES | TEXT | JSON,
        "role": st.sampled_from(["admin", "system"]),
    },
)
BODIES = ENVELOPES | JSON


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=BODIES)
def test_random_json_never_breaks_the_commands_endpoint(world, body):
    response = client_for(world["dave"]).post(commands_url(), body, format="json")

    assert response.status_code < 500, (body, response.content[:300])
    if response.status_code >= 300:
        assert_error(response, response.status_code, response.json()["error"]["code"])
    else:
        command = response.json()
        assert command["status"] == "pending"
        assert command["metadata"]["role"] == "developer"
        uuid.UUID(command["id"])


def test_a_database_outage_is_a_503_that_invites_a_retry(world, monkeypatch):
    from django.db import OperationalError

    from commands_app.api import CommandListView

    def unavailable(self):
        raise OperationalError("connection refused")

    monkeypatch.setattr(CommandListView, "get_queryset", unavailable)
    response = client_for(world["dave"]).get(commands_url())
    assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == "1"
