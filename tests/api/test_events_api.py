"""/t/<tenant>/api/events/: the tenant's log in position order, with filters and a cursor.

Commands are processed in-process; other tests may have committed events to `acme`, so
every query starts after the head seen at the start of the test."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import (
    assert_error,
    assert_field_error,
    client_for,
    events_url,
    execute_test,
    head_position,
    submit_and_process,
)


@pytest.fixture
def log(world):
    """Three processed commands in acme: 1 messageLogged, 3 multiEventEmitted, 1 testExecuted
    (the test on its own system). Returns (head before, commands by name, the test's system)."""
    start = head_position(world.acme)
    dave = client_for(world["dave"])
    system_id = uuid.uuid4()
    commands = {
        "log": submit_and_process(dave, "logMessage", {"message": "hello"}, world.acme),
        "emit": submit_and_process(dave, "emitMultipleEvents", {"count": 3}, world.acme),
        "test": submit_and_process(dave, "executeTest", execute_test(system_id=system_id), world.acme),
    }
    return start, commands, system_id


def events_after(client, start, query=""):
    response = client.get(events_url() + f"?after={start}&limit=1000{query}")
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def test_it_lists_the_events_of_processed_commands_in_position_order(world, log):
    start, commands, _ = log

    events = events_after(client_for(world["dave"]), start)

    assert [e["type"] for e in events] == ["messageLogged"] + ["multiEventEmitted"] * 3 + ["testExecuted"]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert [e["command_id"] for e in events] == [commands["log"]["id"]] + [commands["emit"]["id"]] * 3 + [
        commands["test"]["id"]
    ]
    assert [e["payload"]["index"] for e in events[1:4]] == [0, 1, 2]
    assert events[0]["payload"]["text"] == "hello"


def test_it_returns_only_events_after_a_position(world, log):
    start, _, _ = log
    dave = client_for(world["dave"])
    events = events_after(dave, start)

    later = events_after(dave, events[1]["position"])

    assert [e["id"] for e in later] == [e["id"] for e in events[2:]]


def test_it_filters_by_type(world, log):
    start, commands, _ = log

    events = events_after(client_for(world["dave"]), start, "&type=multiEventEmitted")

    assert len(events) == 3
    assert {e["command_id"] for e in events} == {commands["emit"]["id"]}


def test_it_filters_by_aggregate(world, log):
    start, commands, system_id = log

    events = events_after(
        client_for(world["dave"]), start, f"&aggregate_type=system&aggregate_id={system_id}"
    )

    assert [(e["type"], e["command_id"], e["aggregate_id"]) for e in events] == [
        ("testExecuted", commands["test"]["id"], str(system_id))
    ]


def test_it_filters_by_correlation_id(world, log):
    _, commands, _ = log

    response = client_for(world["dave"]).get(events_url() + f"?correlation_id={commands['emit']['id']}")

    events = response.json()["results"]
    assert len(events) == 3
    assert {e["correlation_id"] for e in events} == {commands["emit"]["id"]}


def test_an_unknown_type_matches_nothing(world, log):
    start, _, _ = log

    assert events_after(client_for(world["dave"]), start, "&type=noSuchEvent") == []


def test_it_pages_with_a_next_link_until_the_log_is_read(world, log):
    start, _, _ = log
    dave = client_for(world["dave"])
    expected = [e["id"] for e in events_after(dave, start)]

    seen, url, pages = [], events_url() + f"?after={start}&limit=1", 0
    while url:
        page = dave.get(url).json()
        assert len(page["results"]) == 1
        seen += [e["id"] for e in page["results"]]
        url = page["next"]
        pages += 1

    assert seen == expected
    assert pages == 5


def test_the_last_page_says_where_it_ended(world, log):
    start, _, _ = log

    page = client_for(world["dave"]).get(events_url() + f"?after={start}&limit=1000").json()

    assert page["next"] is None
    assert page["last_position"] == page["results"][-1]["position"]


def test_a_page_past_the_head_is_empty(world, log):
    page = client_for(world["dave"]).get(events_url() + f"?after={head_position(world.acme)}").json()

    assert page == {"results": [], "next": None, "last_position": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=-1", "after"),
        ("after=abc", "after"),
        ("after=1.5", "after"),
        (f"after={2**63}", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("aggregate_id=nope", "aggregate_id"),
        ("correlation_id=123", "correlation_id"),
    ],
)
def test_it_refuses_a_bad_query_parameter_and_names_it(world, query, field):
    assert_field_error(
        client_for(world["dave"]).get(events_url() + "?" + query), 400, "validation_error", field
    )


def test_it_shows_one_event_by_id(world, log):
    start, _, _ = log
    dave = client_for(world["dave"])
    listed = events_after(dave, start)[-1]

    response = dave.get(events_url() + f"{listed['id']}/")

    assert response.status_code == 200
    assert response.json() == listed
    assert response.json()["payload"]["testName"] == "smoke"


def test_it_answers_an_unknown_event_id_with_404(world):
    assert_error(client_for(world["dave"]).get(events_url() + f"{uuid.uuid4()}/"), 404, "not_found")


def test_it_answers_an_event_path_that_is_not_a_uuid_with_404(world):
    assert_error(client_for(world["dave"]).get(events_url() + "42/"), 404, "not_found")


def test_a_viewer_reads_none_of_the_system_slices_messages(world, log):
    start, _, _ = log

    assert events_after(client_for(world["vera"]), start) == []


def test_a_superuser_without_membership_reads_the_log(world, log):
    start, _, _ = log

    assert len(events_after(client_for(world["root"]), start)) == 5
