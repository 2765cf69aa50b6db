"""Operator actions over HTTP: retry a failed command; resume, skip and replay for a
stalled projection. Who may act, what changes, and what is refused."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import (
    assert_error,
    client_for,
    command_url,
    process,
    project,
    projections_url,
    read_model_url,
    send,
    stored_command,
    submit_and_process,
)


def retry_url(command_id) -> str:
    return command_url(command_id) + "retry/"


def projection_url(name: str, action: str = "") -> str:
    return f"{projections_url()}{name}/" + (f"{action}/" if action else "")


@pytest.fixture
def failed(world):
    """A simulateFailure command sent by ada (admin) and processed: status failed."""
    command = submit_and_process(client_for(world["ada"]), "simulateFailure", {}, world.acme)
    assert stored_command(world.acme, command["id"]).status == "failed"
    return command


# --- retry -----------------------------------------------------------------------------------
def test_an_admin_retries_a_failed_command_and_its_history_is_kept(world, failed):
    response = client_for(world["ada"]).post(retry_url(failed["id"]))

    assert response.status_code == 202
    command = response.json()
    assert (command["status"], command["error"], command["attempts"]) == ("pending", None, 0)
    previous = command["metadata"]["previous_errors"][-1]
    assert previous["error"]["code"] == "simulated_failure"
    assert previous["retried_by"] == "ada"
    assert process(world.acme, failed["id"]) == "failed"


def test_only_a_role_that_may_send_the_command_may_retry_it(world, failed):
    response = client_for(world["dave"]).post(retry_url(failed["id"]))

    assert_error(response, 403, "forbidden")
    assert stored_command(world.acme, failed["id"]).status == "failed"


@pytest.mark.parametrize("persona", ["vera", "alice"])
def test_a_member_who_may_not_see_the_command_cannot_retry_it_nor_learn_it_exists(world, failed, persona):
    response = client_for(world[persona]).post(retry_url(failed["id"]))

    assert_error(response, 404, "not_found")
    assert stored_command(world.acme, failed["id"]).status == "failed"


@pytest.mark.parametrize(("persona", "code"), [("bob", "not_a_member"), ("root", "not_a_member")])
def test_outsiders_cannot_retry(world, failed, persona, code):
    assert_error(client_for(world[persona]).post(retry_url(failed["id"])), 403, code)


def test_it_refuses_to_retry_a_command_that_did_not_fail(world):
    dave = client_for(world["dave"])
    command = send(dave, "logMessage", {"message": "hi"}).json()

    assert_error(dave.post(retry_url(command["id"])), 409, "not_retryable")
    assert stored_command(world.acme, command["id"]).status == "pending"


def test_it_answers_a_retry_of_an_unknown_command_with_404(world):
    assert_error(client_for(world["ada"]).post(retry_url(uuid.uuid4())), 404, "not_found")


# --- projection detail ---------------------------------------------------------------------------
def test_it_shows_one_projection_with_its_dead_letters(world):
    response = client_for(world["vera"]).get(projection_url("system_status"))

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "system_status"
    assert isinstance(body["dead_letter_records"], list)


def test_it_answers_an_unknown_projection_with_404_and_the_known_names(world):
    error = assert_error(client_for(world["dave"]).get(projection_url("nope")), 404, "not_found")

    assert {"system_metrics", "system_status", "system_saga"} <= set(error["details"]["known"])


# --- resume / skip / replay ------------------------------------------------------------------------
def test_a_developer_resumes_a_stalled_projection_which_then_applies_the_event(world, stalled):
    _, system_id = stalled

    response = client_for(world["dave"]).post(projection_url("system_status", "resume"))

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["failures"]) == ("running", 0)
    project(world.acme)
    assert client_for(world["dave"]).get(read_model_url("system_status", str(system_id))).status_code == 200


def test_resuming_a_projection_that_fails_on_nothing_is_refused_and_changes_nothing(world):
    before = client_for(world["dave"]).get(projection_url("system_status")).json()

    response = client_for(world["dave"]).post(projection_url("system_status", "resume"))

    error = assert_error(response, 409, "operation_refused")
    assert "nothing to resume" in error["message"] and error["details"]["status"] == "running"
    assert client_for(world["dave"]).get(projection_url("system_status")).json() == before


def test_a_developer_skips_the_stuck_event_and_replays_it_later(world, stalled):
    event, system_id = stalled
    dave = client_for(world["dave"])

    skipped = dave.post(projection_url("system_status", "skip"))

    assert skipped.status_code == 200
    letter = skipped.json()["dead_letter"]
    assert (letter["event_id"], letter["position"], letter["skipped_by"]) == (
        str(event.id),
        event.position,
        "dave",
    )
    assert skipped.json()["status"] == "running"
    project(world.acme)
    assert_error(dave.get(read_model_url("system_status", str(system_id))), 404, "not_found")
    assert dave.get(projection_url("system_status")).json()["dead_letters"] == 1

    replayed = dave.post(projection_url("system_status", f"dead-letters/{letter['id']}/replay"))

    assert replayed.status_code == 200
    assert replayed.json()["replayed_at"] is not None
    assert dave.get(read_model_url("system_status", str(system_id))).status_code == 200
    assert dave.get(projection_url("system_status")).json()["dead_letters"] == 0
    assert_error(
        dave.post(projection_url("system_status", f"dead-letters/{letter['id']}/replay")),
        409,
        "operation_refused",
    )


def test_it_refuses_to_skip_when_nothing_is_stalled(world):
    project(world.acme)

    assert_error(
        client_for(world["ada"]).post(projection_url("system_status", "skip")), 409, "operation_refused"
    )


@pytest.mark.parametrize("action", ["resume", "skip"])
@pytest.mark.parametrize("persona", ["alice", "vera", "sam"])
def test_only_admins_and_developers_operate_projections(world, stalled, action, persona):
    response = client_for(world[persona]).post(projection_url("system_status", action))

    assert_error(response, 403, "forbidden")
    assert client_for(world["ada"]).get(projection_url("system_status")).json()["status"] == "stalled"


@pytest.mark.parametrize("persona", ["bob", "root"])
def test_outsiders_cannot_operate_projections(world, persona):
    assert_error(
        client_for(world[persona]).post(projection_url("system_status", "resume")), 403, "not_a_member"
    )


@pytest.mark.parametrize("action", ["resume", "skip"])
def test_it_answers_an_action_on_an_unknown_projection_with_404(world, action):
    assert_error(client_for(world["ada"]).post(projection_url("nope", action)), 404, "not_found")


@pytest.mark.parametrize("letter_id", ["999999", str(2**63), str(2**80)])
def test_it_answers_an_unknown_dead_letter_with_404(world, letter_id):
    response = client_for(world["ada"]).post(
        projection_url("system_status", f"dead-letters/{letter_id}/replay")
    )

    assert_error(response, 404, "not_found")
