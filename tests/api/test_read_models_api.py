"""/t/<tenant>/api/read-models/<name>/: read-only rows the projections maintain."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import (
    assert_error,
    assert_field_error,
    client_for,
    command_url,
    execute_test,
    project,
    read_model_url,
    submit_and_process,
)


def all_rows(client, url):
    """Every row of a read-model list, following the cursor (other tests may have committed rows)."""
    rows = []
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.json()
        rows += page.json()["results"]
        url = page.json()["next"]
    return rows


@pytest.fixture
def systems(world):
    """Two systems in acme with one test each (one passed, one failed), projected."""
    dave = client_for(world["dave"])
    passed, failed = uuid.uuid4(), uuid.uuid4()
    submit_and_process(dave, "executeTest", execute_test(system_id=passed, name="login"), world.acme)
    submit_and_process(
        dave, "executeTest", execute_test(system_id=failed, result="failure", name="checkout"), world.acme
    )
    project(world.acme)
    return passed, failed


def test_it_shows_a_systems_status_after_its_test_was_projected(world, systems):
    passed, _ = systems

    response = client_for(world["dave"]).get(read_model_url("system_status", str(passed)))

    assert response.status_code == 200
    row = response.json()
    assert row["system_id"] == str(passed)
    assert (row["last_test_name"], row["last_result"], row["number_executed_tests"]) == (
        "login",
        "success",
        1,
    )
    assert row["last_tester_id"] == str(world["dave"].user.pk)


def test_it_lists_status_rows_filtered_by_last_result(world, systems):
    passed, failed = systems
    dave = client_for(world["dave"])

    successes = all_rows(dave, read_model_url("system_status") + "?last_result=success")
    failures = all_rows(dave, read_model_url("system_status") + "?last_result=failure")

    assert str(passed) in {r["system_id"] for r in successes}
    assert str(failed) not in {r["system_id"] for r in successes}
    assert {r["last_result"] for r in successes} == {"success"}
    assert str(failed) in {r["system_id"] for r in failures}
    assert {r["last_result"] for r in failures} == {"failure"}


def test_it_filters_by_a_uuid_field(world, systems):
    passed, _ = systems
    dave = client_for(world["dave"])
    test_id = dave.get(read_model_url("system_status", str(passed))).json()["last_test_id"]

    rows = dave.get(read_model_url("system_status") + f"?last_test_id={test_id}").json()["results"]

    assert [r["system_id"] for r in rows] == [str(passed)]


def test_the_tenant_metrics_count_the_projected_tests(world, systems):
    response = client_for(world["dave"]).get(read_model_url("system_metrics", "tenant"))

    assert response.status_code == 200
    metrics = response.json()
    assert metrics["test_count"] >= 2
    assert metrics["failed_test_count"] >= 1


def test_rows_appear_only_once_the_projection_ran(world):
    system_id = uuid.uuid4()
    submit_and_process(
        client_for(world["dave"]), "executeTest", execute_test(system_id=system_id), world.acme
    )
    dave = client_for(world["dave"])

    assert_error(dave.get(read_model_url("system_status", str(system_id))), 404, "not_found")
    project(world.acme)
    assert dave.get(read_model_url("system_status", str(system_id))).status_code == 200


def test_it_refuses_a_filter_the_read_model_does_not_offer(world):
    assert_field_error(
        client_for(world["dave"]).get(read_model_url("system_status") + "?messages_logged=1"),
        400,
        "validation_error",
        "messages_logged",
    )


def test_a_filter_on_a_field_with_choices_takes_only_a_choice(world):
    error = assert_field_error(
        client_for(world["ada"]).get(read_model_url("account_balances") + "?status=bogus"),
        400,
        "validation_error",
        "status",
    )

    assert "status" in error["message"]


def test_every_parameter_is_checked_before_any_wait(world):
    """A bad filter is refused at once, not after the read-your-writes wait runs out."""
    url = read_model_url("system_status") + f"?min_position={2**40}&wait=0&messages_logged=1"

    assert_field_error(client_for(world["dave"]).get(url), 400, "validation_error", "messages_logged")


def test_it_refuses_a_filter_value_of_the_wrong_type(world):
    assert_field_error(
        client_for(world["dave"]).get(read_model_url("system_status") + "?last_test_id=nope"),
        400,
        "validation_error",
        "last_test_id",
    )


def test_it_answers_an_unknown_read_model_with_404_and_the_known_names(world):
    error = assert_error(client_for(world["dave"]).get(read_model_url("commands")), 404, "unknown_read_model")

    assert {"system_metrics", "system_status"} <= set(error["details"]["known"])
    assert error["details"]["known"] == sorted(error["details"]["known"])


def test_it_answers_an_unknown_read_model_row_with_404(world):
    assert_error(client_for(world["dave"]).get(read_model_url("unknown", "x")), 404, "unknown_read_model")


@pytest.mark.parametrize("key", ["not-a-uuid", "0f4e9a5c-6b1d-4e8f-a2c3-9d8e7f6a5b4c"])
def test_it_answers_a_bad_or_unknown_key_with_404(world, key):
    assert_error(client_for(world["dave"]).get(read_model_url("system_status", key)), 404, "not_found")


def test_read_models_are_read_only(world, systems):
    passed, _ = systems

    response = client_for(world["ada"]).delete(read_model_url("system_status", str(passed)))

    assert_error(response, 405, "method_not_allowed")
    assert client_for(world["ada"]).get(read_model_url("system_status", str(passed))).status_code == 200


def test_a_client_reads_its_own_write_with_min_position(world):
    dave = client_for(world["dave"])
    system_id = uuid.uuid4()
    posted = submit_and_process(dave, "executeTest", execute_test(system_id=system_id), world.acme)
    done = dave.get(command_url(posted["id"])).json()
    position = max(e["position"] for e in done["result"]["events"])
    url = read_model_url("system_status", str(system_id))

    behind = dave.get(f"{url}?min_position={position}&wait=0")
    error = assert_error(behind, 503, "projection_behind")
    assert error["details"]["min_position"] == position
    assert error["details"]["checkpoint"] < position

    project(world.acme)
    caught_up = dave.get(f"{url}?min_position={position}&wait=0")
    assert caught_up.status_code == 200
    assert caught_up.json()["number_executed_tests"] == 1
    assert int(caught_up["X-Projection-Checkpoint"]) >= position


BAD_READ_YOUR_WRITES = [
    ("min_position=-1", "min_position"),
    ("min_position=x", "min_position"),
    (f"min_position={2**63}", "min_position"),
    ("min_position=1&wait=31", "wait"),
    ("wait=abc", "wait"),
]
ROWS, ROW = (
    read_model_url("system_status"),
    read_model_url("system_status", "0f4e9a5c-6b1d-4e8f-a2c3-9d8e7f6a5b4c"),
)


@pytest.mark.parametrize(
    ("url", "query", "field"),
    [(ROWS, q, f) for q, f in [*BAD_READ_YOUR_WRITES, ("limit=0", "limit")]]
    + [(ROW, q, f) for q, f in BAD_READ_YOUR_WRITES],
)
def test_bad_read_your_writes_parameters_are_rejected_and_named(world, url, query, field):
    assert_field_error(client_for(world["dave"]).get(f"{url}?{query}"), 400, "validation_error", field)
