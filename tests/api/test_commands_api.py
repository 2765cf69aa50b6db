"""/t/<tenant>/api/commands/: submitting (202, stored pending), idempotency, validation,
authorization, and reading commands back. Nothing is processed here (no worker runs)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.conf import settings
from django.test import Client

from tests.api.helpers import (
    assert_error,
    assert_field_error,
    client_for,
    command_count,
    command_url,
    commands_url,
    execute_test,
    post_json,
    process,
    send,
    stored_command,
    stores_no_command,
)
from tests.api.read_scopes import EVERYONE, seed


def commands_with_message(tenant, message: str) -> list[str]:
    from django_tenants.utils import schema_context

    from commands_app.models import Command

    with schema_context(tenant.schema_name):
        return [
            str(pk) for pk in Command.objects.filter(payload__message=message).values_list("pk", flat=True)
        ]


# --- accepting -------------------------------------------------------------------------------
def test_it_accepts_a_command_and_stores_it_pending(world):
    before = command_count(world.acme)

    response = send(client_for(world["dave"]), "logMessage", {"message": "hello"})

    assert response.status_code == 202
    command = response.json()
    assert command["status"] == "pending"
    assert command["type"] == "logMessage"
    assert command["payload"] == {"message": "hello", "level": "info"}  # normalised: defaults filled
    assert command["attempts"] == 0 and command["result"] is None and command["error"] is None
    assert command["correlation_id"] == command["id"]
    assert command_count(world.acme) == before + 1
    assert stored_command(world.acme, command["id"]).status == "pending"


def test_it_records_who_sent_the_command_and_with_which_role(world):
    command = send(client_for(world["dave"]), "logMessage", {"message": "hello"}).json()

    metadata = command["metadata"]
    assert metadata["username"] == "dave"
    assert metadata["user_id"] == str(world["dave"].user.pk)
    assert metadata["role"] == "developer"
    assert metadata["tenant"] == "acme"
    assert metadata["source"] == "api"


def test_it_normalizes_the_payload_to_its_wire_form(world):
    test_id = str(uuid.uuid4())

    response = send(
        client_for(world["dave"]), "executeTest", {"test_id": test_id, "test_name": "login", "systemId": None}
    )

    assert response.status_code == 202
    assert response.json()["payload"] == {"testId": test_id, "testName": "login"}


def test_it_shows_the_stored_command_by_id(world):
    dave = client_for(world["dave"])
    command = send(dave, "logMessage", {"message": "hello"}).json()

    response = dave.get(command_url(command["id"]))

    assert response.status_code == 200
    assert response.json() == command


# --- idempotency -----------------------------------------------------------------------------
def test_it_replays_the_same_id_and_body_without_storing_twice(world):
    dave = client_for(world["dave"])
    body = {"id": str(uuid.uuid4()), "type": "logMessage", "payload": {"message": "once"}}
    first = dave.post(commands_url(), body, format="json")
    count = command_count(world.acme)

    again = dave.post(commands_url(), body, format="json")

    assert first.status_code == 202 and first.json()["id"] == body["id"]
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert command_count(world.acme) == count


def test_it_refuses_the_same_id_with_a_different_body(world):
    dave = client_for(world["dave"])
    command_id = str(uuid.uuid4())
    send(dave, "logMessage", {"message": "first"}, id=command_id)

    with stores_no_command(world.acme):
        response = send(dave, "logMessage", {"message": "second"}, id=command_id)

    assert_error(response, 409, "idempotency_conflict")
    assert stored_command(world.acme, command_id).payload == {"message": "first", "level": "info"}


def test_an_id_used_in_one_tenant_is_free_in_another(world):
    command_id = str(uuid.uuid4())

    in_acme = send(client_for(world["dave"]), "logMessage", {"message": "a"}, id=command_id)
    in_globex = send(client_for(world["bob"]), "logMessage", {"message": "a"}, tenant="globex", id=command_id)

    assert (in_acme.status_code, in_globex.status_code) == (202, 202)
    assert in_globex.json()["metadata"]["tenant"] == "globex"


def test_a_viewer_cannot_replay_a_command_she_may_not_send(world):
    body = {"id": str(uuid.uuid4()), "type": "logMessage", "payload": {"message": "dave's"}}
    assert client_for(world["dave"]).post(commands_url(), body, format="json").status_code == 202

    response = client_for(world["vera"]).post(commands_url(), body, format="json")

    assert_error(response, 403, "forbidden")


# --- validation ------------------------------------------------------------------------------
def test_it_refuses_an_unknown_command_type_and_lists_the_known_ones(world):
    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "launchRocket", {})

    error = assert_error(response, 400, "unknown_command_type")
    assert "logMessage" in error["details"]["known"]


@pytest.mark.parametrize(
    ("type_name", "payload", "code", "field"),
    [
        ("emitMultipleEvents", {"count": 0}, "invalid_payload", "count"),
        ("emitMultipleEvents", {"count": 101}, "invalid_payload", "count"),
        ("emitMultipleEvents", {"count": 1.5}, "invalid_payload", "count"),
        ("emitMultipleEvents", {}, "invalid_payload", "count"),
        ("executeTest", {"testName": "no id"}, "invalid_payload", "testId"),
        ("executeTest", {"testId": "not-a-uuid", "testName": "x"}, "invalid_payload", "testId"),
        ("executeTest", {"testId": str(uuid.uuid4()), "testName": ""}, "invalid_payload", "testName"),
        ("logMessage", {"message": "hi", "priority": "high"}, "invalid_payload", "priority"),
        ("logMessage", {"message": "hi", "systemId": "system"}, "invalid_payload", "systemId"),
        ("logMessage", ["message", "hi"], "invalid_payload", "payload"),
        ("logMessage", "hi", "invalid_payload", "payload"),
        ("logMessage", None, "validation_error", "payload"),
    ],
)
def test_it_refuses_a_payload_that_breaks_the_schema_and_names_the_field(
    world, type_name, payload, code, field
):
    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), type_name, payload)

    assert_field_error(response, 400, code, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {"message": "hi"}}, "type"),
        ({"type": "logMessage"}, "payload"),
        ({"type": "", "payload": {"message": "hi"}}, "type"),
        ({"type": ["logMessage"], "payload": {"message": "hi"}}, "type"),
        ({"type": "x" * 101, "payload": {}}, "type"),
        ({"id": "not-a-uuid", "type": "logMessage", "payload": {"message": "hi"}}, "id"),
        ({"type": "logMessage", "payload": {"message": "hi"}, "metadata": None}, "metadata"),
        ({"type": "logMessage", "payload": {"message": "hi"}, "metadata": ["labels"]}, "metadata"),
    ],
)
def test_it_refuses_a_malformed_envelope_and_names_the_field(world, body, field):
    with stores_no_command(world.acme):
        response = client_for(world["dave"]).post(commands_url(), body, format="json")

    assert_field_error(response, 400, "validation_error", field)


def test_it_refuses_a_body_that_is_not_an_object(world):
    with stores_no_command(world.acme):
        response = post_json(client_for(world["dave"]), commands_url(), "[]")

    assert_error(response, 400, "validation_error")


def test_it_refuses_malformed_json(world):
    with stores_no_command(world.acme):
        response = post_json(client_for(world["dave"]), commands_url(), '{"type": "logMessage", "payload": {')

    assert_error(response, 400, "malformed_request")


def test_it_refuses_json_with_nan(world):
    with stores_no_command(world.acme):
        response = post_json(
            client_for(world["dave"]),
            commands_url(),
            '{"type": "emitMultipleEvents", "payload": {"count": NaN}}',
        )

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("text/plain", "type=logMessage"), ("application/x-www-form-urlencoded", "type=logMessage&payload=x")],
)
def test_it_refuses_bodies_that_are_not_json(world, content_type, data):
    with stores_no_command(world.acme):
        response = client_for(world["dave"]).post(commands_url(), data, content_type=content_type)

    assert_error(response, 415, "unsupported_media_type")


def test_it_refuses_multipart_form_data(world):
    with stores_no_command(world.acme):
        response = client_for(world["dave"]).post(commands_url(), {"type": "logMessage", "payload": "x"})

    assert_error(response, 415, "unsupported_media_type")


def test_it_refuses_a_payload_over_the_payload_limit(world):
    limit = settings.COMMAND_PAYLOAD_MAX_BYTES
    payload = {**execute_test(), "parameters": {"blob": "x" * (limit + 10)}}

    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "executeTest", payload)

    error = assert_error(response, 413, "payload_too_large")
    assert error["details"]["limit"] == limit
    assert error["details"]["size"] > limit


def test_it_refuses_a_request_body_over_the_request_limit(world):
    payload = {**execute_test(), "parameters": {"blob": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}}

    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "executeTest", payload)

    assert_error(response, 413, "request_too_large")


def test_it_measures_the_payload_limit_in_utf8_bytes(world):
    payload = {**execute_test(), "parameters": {"note": "€" * 12_000}}
    assert len(json.dumps(payload, ensure_ascii=False).encode()) < settings.COMMAND_PAYLOAD_MAX_BYTES

    response = send(client_for(world["dave"]), "executeTest", payload)

    assert response.status_code == 202, response.json()


# --- scheduling (not_before) ---------------------------------------------------------------
def _later(**delta: float) -> datetime:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0)


def test_it_accepts_a_command_scheduled_for_later_and_keeps_it_pending(world):
    dave = client_for(world["dave"])
    when = _later(hours=1)

    response = send(dave, "logMessage", {"message": "later"}, not_before=when.isoformat())

    assert response.status_code == 202, response.json()
    assert datetime.fromisoformat(response.json()["not_before"].replace("Z", "+00:00")) == when
    assert stored_command(world.acme, response.json()["id"]).not_before == when
    assert dave.get(command_url(response.json()["id"]) + "?wait=0.1").json()["status"] == "pending"


def test_it_refuses_a_schedule_more_than_a_year_ahead(world):
    with stores_no_command(world.acme):
        response = send(
            client_for(world["dave"]), "logMessage", {"message": "x"}, not_before=_later(days=400).isoformat()
        )

    assert_field_error(response, 400, "validation_error", "not_before")


@pytest.mark.parametrize("value", ["tomorrow", "2030-13-01T00:00:00Z", 12345])
def test_it_refuses_a_schedule_that_is_not_a_datetime(world, value):
    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "logMessage", {"message": "x"}, not_before=value)

    assert_field_error(response, 400, "validation_error", "not_before")


def test_the_schedule_is_part_of_the_idempotent_body(world):
    dave = client_for(world["dave"])
    command_id = str(uuid.uuid4())
    when = _later(hours=2)
    send(dave, "logMessage", {"message": "x"}, id=command_id, not_before=when.isoformat())

    same_instant = send(
        dave,
        "logMessage",
        {"message": "x"},
        id=command_id,
        not_before=when.astimezone(timezone(timedelta(hours=5))).isoformat(),
    )
    other_time = send(
        dave, "logMessage", {"message": "x"}, id=command_id, not_before=_later(hours=3).isoformat()
    )

    assert same_instant.status_code == 200
    assert_error(other_time, 409, "idempotency_conflict")


# --- metadata --------------------------------------------------------------------------------
def test_it_keeps_a_client_correlation_id_and_labels(world):
    dave = client_for(world["dave"])
    correlation_id = send(dave, "logMessage", {"message": "first"}).json()["correlation_id"]

    response = send(
        dave,
        "logMessage",
        {"message": "hi"},
        metadata={"correlation_id": correlation_id, "labels": {"ticket": "OPS-1"}},
    )

    assert response.status_code == 202, response.json()
    command = response.json()
    assert command["correlation_id"] == correlation_id
    assert command["metadata"]["labels"] == {"ticket": "OPS-1"}


@pytest.mark.parametrize("key", ["role", "user_id", "tenant", "username"])
def test_it_refuses_metadata_outside_the_whitelist(world, key):
    with stores_no_command(world.acme):
        response = send(client_for(world["alice"]), "simulateFailure", {}, metadata={key: "admin"})

    assert_field_error(response, 400, "validation_error", "metadata")


def test_it_refuses_more_than_twenty_labels(world):
    labels = {f"k{i}": "v" for i in range(21)}

    with stores_no_command(world.acme):
        response = send(
            client_for(world["dave"]), "logMessage", {"message": "hi"}, metadata={"labels": labels}
        )

    assert_field_error(response, 400, "validation_error", "metadata")


def test_it_refuses_a_correlation_id_that_is_not_a_uuid(world):
    with stores_no_command(world.acme):
        response = send(
            client_for(world["dave"]), "logMessage", {"message": "hi"}, metadata={"correlation_id": "abc"}
        )

    assert_field_error(response, 400, "validation_error", "metadata")


# --- authorization ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("persona", "type_name", "payload"),
    [
        ("alice", "simulateFailure", {}),
        ("alice", "executeRetryableTest", execute_test()),
        ("vera", "logMessage", {"message": "hi"}),
        ("sam", "logMessage", {"message": "hi"}),
        ("dave", "simulateFailure", {}),
    ],
)
def test_it_forbids_a_command_the_members_role_may_not_send(world, persona, type_name, payload):
    with stores_no_command(world.acme):
        response = send(client_for(world[persona]), type_name, payload)

    error = assert_error(response, 403, "forbidden")
    assert error["details"]["command"] == type_name


@pytest.mark.parametrize(
    ("persona", "type_name", "payload"),
    [
        ("ada", "simulateFailure", {}),
        ("ada", "logMessage", {"message": "hi"}),
        ("sam", "simulateFailure", {}),
        ("sam", "executeRetryableTest", execute_test()),
        ("alice", "executeTest", execute_test()),
        ("dave", "executeRetryableTest", execute_test()),
    ],
)
def test_it_accepts_a_command_the_members_role_may_send(world, persona, type_name, payload):
    response = send(client_for(world[persona]), type_name, payload)

    assert response.status_code == 202, response.json()
    assert response.json()["metadata"]["username"] == persona


def test_a_role_in_the_envelope_does_not_escalate(world):
    with stores_no_command(world.acme):
        response = send(client_for(world["alice"]), "simulateFailure", {}, role="admin")

    assert assert_error(response, 403, "forbidden")["details"]["role"] == "tester"


def test_the_stored_role_comes_from_the_membership_not_the_body(world):
    response = send(client_for(world["dave"]), "logMessage", {"message": "hi"}, role="admin", user_id="1")

    assert response.status_code == 202
    assert response.json()["metadata"]["role"] == "developer"
    assert response.json()["metadata"]["user_id"] == str(world["dave"].user.pk)


def test_a_member_of_another_tenant_is_not_a_member_here(world):
    with stores_no_command(world.acme):
        response = send(client_for(world["bob"]), "logMessage", {"message": "hi"})

    assert_error(response, 403, "not_a_member")


def test_a_superuser_without_membership_reads_but_cannot_send(world):
    root = client_for(world["root"])
    command = send(client_for(world["dave"]), "logMessage", {"message": "hi"}).json()

    assert root.get(command_url(command["id"])).status_code == 200
    with stores_no_command(world.acme):
        assert_error(send(root, "logMessage", {"message": "hi"}), 403, "not_a_member")


def test_an_anonymous_caller_is_asked_to_authenticate(world):
    with stores_no_command(world.acme):
        assert_error(send(client_for(), "logMessage", {"message": "hi"}), 401, "not_authenticated")
    assert_error(client_for().get(commands_url()), 401, "not_authenticated")


def test_a_bad_token_is_refused(world):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    with stores_no_command(world.acme):
        assert_error(send(client, "logMessage", {"message": "hi"}), 401, "authentication_failed")


def test_a_session_without_a_csrf_token_cannot_send(world):
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    browser.force_login(world["dave"].user)

    with stores_no_command(world.acme):
        response = browser.post(
            commands_url(),
            json.dumps({"type": "logMessage", "payload": {"message": "hi"}}),
            content_type="application/json",
        )

    assert_error(response, 403, "permission_denied")


# --- reading ---------------------------------------------------------------------------------
def test_it_answers_an_unknown_command_id_with_404(world):
    assert_error(client_for(world["dave"]).get(command_url(uuid.uuid4())), 404, "not_found")


@pytest.mark.parametrize("command_id", ["not-a-uuid", "1", "0" * 36])
def test_it_answers_a_path_that_is_not_a_command_id_with_404_json(world, command_id):
    assert_error(client_for(world["dave"]).get(command_url(command_id)), 404, "not_found")


@pytest.mark.parametrize("wait", ["abc", "31", "-1", "nan", "inf", "1e9"])
def test_it_refuses_a_wait_outside_zero_to_thirty_seconds(world, wait):
    dave = client_for(world["dave"])
    command = send(dave, "logMessage", {"message": "hi"}).json()

    assert_field_error(
        dave.get(command_url(command["id"]) + f"?wait={wait}"), 400, "validation_error", "wait"
    )


def test_a_short_wait_on_a_pending_command_returns_it_still_pending(world):
    dave = client_for(world["dave"])
    command = send(dave, "logMessage", {"message": "hi"}).json()

    response = dave.get(command_url(command["id"]) + "?wait=0.1")

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_it_lists_commands_filtered_by_status_and_type(world):
    dave = client_for(world["dave"])
    logged = {send(dave, "logMessage", {"message": str(i)}).json()["id"] for i in range(2)}
    emitted = send(dave, "emitMultipleEvents", {"count": 1}).json()["id"]

    response = dave.get(commands_url() + "?status=pending&type=logMessage&limit=500")

    assert response.status_code == 200
    results = response.json()["results"]
    ids = {c["id"] for c in results}
    assert logged <= ids
    assert emitted not in ids
    assert {(c["status"], c["type"]) for c in results} == {("pending", "logMessage")}


def test_it_lists_the_newest_command_first_and_pages_with_a_cursor(world):
    dave = client_for(world["dave"])
    sent = [send(dave, "logMessage", {"message": str(i)}).json()["id"] for i in range(3)]

    first = dave.get(commands_url() + "?limit=2").json()
    second = dave.get(first["next"]).json()

    assert [c["id"] for c in first["results"]] == sent[::-1][:2]
    assert second["results"][0]["id"] == sent[0]


def test_it_refuses_an_unknown_status_filter(world):
    assert_field_error(
        client_for(world["dave"]).get(commands_url() + "?status=bogus"), 400, "validation_error", "status"
    )


@pytest.mark.parametrize("limit", ["ten", "0", "501", "1.5"])
def test_it_refuses_a_page_size_it_cannot_serve_and_names_the_parameter(world, limit):
    error = assert_field_error(
        client_for(world["dave"]).get(commands_url() + f"?limit={limit}"), 400, "validation_error", "limit"
    )

    assert "limit" in error["message"]


def test_an_empty_filter_means_no_filter(world):
    dave = client_for(world["dave"])
    sent = send(dave, "logMessage", {"message": "hi"}).json()["id"]

    listed = dave.get(commands_url() + "?status=&type=&limit=")

    assert listed.status_code == 200
    assert sent in {c["id"] for c in listed.json()["results"]}


def test_it_answers_an_unreadable_cursor_with_404(world):
    assert_error(client_for(world["dave"]).get(commands_url() + "?cursor=abc"), 404, "not_found")


def test_it_does_not_allow_deleting_commands(world):
    dave = client_for(world["dave"])
    command = send(dave, "logMessage", {"message": "hi"}).json()

    assert_error(dave.delete(command_url(command["id"])), 405, "method_not_allowed")
    assert stored_command(world.acme, command["id"]) is not None


def test_the_command_output_equals_the_generic_model_serializer(world):
    """CommandOut builds its output directly (for speed); it must say exactly what DRF's
    ModelSerializer says for the same fields, in every state a command can be in."""
    from django_tenants.utils import schema_context
    from rest_framework import serializers

    from commands_app.api import CommandOut
    from commands_app.models import Command

    class Generic(serializers.ModelSerializer):
        class Meta:
            model = Command
            fields = CommandOut.Meta.fields

    alice = client_for(world["alice"])
    later = datetime.now(timezone(timedelta(hours=2))).replace(microsecond=678901) + timedelta(days=30)
    ids = [
        send(alice, "logMessage", {"message": "kept pending"}).json()["id"],
        send(alice, "logMessage", {"message": "later"}, not_before=later.isoformat()).json()["id"],
        send(alice, "logMessage", {"message": "processed"}, metadata={"labels": {"k": "v"}}).json()["id"],
    ]
    process(world.acme, ids[2])
    with schema_context(world.acme.schema_name):
        commands = list(Command.objects.filter(pk__in=ids))
        assert {c.status for c in commands} == {"pending", "consumed"}  # consumed: events recorded
        for command in commands:
            assert CommandOut(command).data == Generic(command).data
        assert CommandOut(commands, many=True).data == Generic(commands, many=True).data


def test_a_post_with_wait_returns_the_command_as_it_stands_when_the_wait_ends(world):
    """Nothing processes commands in this tier, so the wait runs out: the answer is the stored
    command, still pending, with the usual 202 (see test_worker_end_to_end for the outcome)."""
    import time

    alice = client_for(world["alice"])
    marker = f"waited {uuid.uuid4()}"
    started = time.monotonic()
    answer = alice.post(
        commands_url() + "?wait=0.3", {"type": "logMessage", "payload": {"message": marker}}, format="json"
    )
    assert answer.status_code == 202
    assert answer.json()["status"] == "pending"
    assert time.monotonic() - started >= 0.3
    # Stored once, though the wait re-read it: the one command this test sent, and no other.
    assert commands_with_message(world.acme, marker) == [answer.json()["id"]]


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
def test_a_post_with_a_bad_wait_is_refused_and_stores_nothing(world, wait):
    alice = client_for(world["alice"])
    with stores_no_command(world.acme):
        answer = alice.post(
            commands_url() + f"?wait={wait}",
            {"type": "logMessage", "payload": {"message": "hi"}},
            format="json",
        )
    assert_field_error(answer, 400, "validation_error", "wait")


@pytest.mark.parametrize("persona", EVERYONE)
def test_a_command_read_by_id_is_visible_to_each_role_exactly_as_the_list_shows(world, persona):
    """GET /commands/<id>/ reads the row by its key and asks read_policy.sees_command; the
    list filters with visible_commands. Both must agree for every role and command."""
    from django_tenants.utils import schema_context

    from commands_app.models import Command
    from commands_app.read_policy import Reader, sees_command, visible_commands
    from intent_project.api.permissions import role_in

    seed(world)
    user = world[persona].user
    reader = Reader.of(user, role_in(user, world.acme))
    with schema_context(world.acme.schema_name):
        rows = list(Command.objects.all())
        listed = set(Command.objects.filter(visible_commands(reader)).values_list("id", flat=True))
    sees = sees_command(reader)
    assert {row.id for row in rows if sees(row)} == listed
    assert rows, "the seed sends commands"
    if persona in ("dave", "bob"):  # and what the API answers, the same
        client = client_for(world[persona])
        for row in rows[:12]:
            answered = client.get(command_url(row.id)).status_code
            assert answered == (200 if row.id in listed else 404 if persona == "dave" else 403)
