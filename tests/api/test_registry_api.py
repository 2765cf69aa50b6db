"""GET /api/registry/: what a client may send and read, published without authentication."""

from __future__ import annotations

import pytest

from tests.api.helpers import REGISTRY_URL, client_for


@pytest.fixture
def registry(world):
    response = client_for().get(REGISTRY_URL)
    assert response.status_code == 200
    return response.json()


def test_it_publishes_every_command_with_its_json_schema(registry):
    commands = {c["type"]: c for c in registry["commands"]}

    assert {
        "logMessage",
        "simulateFailure",
        "emitMultipleEvents",
        "executeTest",
        "executeRetryableTest",
    } <= set(commands)
    count = commands["emitMultipleEvents"]["schema"]["properties"]["count"]
    assert (count["minimum"], count["maximum"], count["type"]) == (1, 100, "integer")
    assert commands["executeTest"]["schema"]["required"] == ["testId", "testName"]
    assert commands["logMessage"]["schema"]["additionalProperties"] is False


def test_it_says_which_roles_may_send_each_command(registry):
    roles = {c["type"]: c["roles"] for c in registry["commands"]}

    assert roles["simulateFailure"] == ["admin", "system"]
    assert roles["logMessage"] == ["admin", "developer", "tester"]
    assert registry["roles"]["tester"] == ["emitMultipleEvents", "executeTest", "logMessage"]
    assert "viewer" in {r["role"] for r in registry["tenant_roles"]}


def test_it_publishes_events_aggregates_and_projections(registry):
    events = {e["type"]: e for e in registry["events"]}

    assert {"messageLogged", "multiEventEmitted", "testExecuted", "retryableTestExecuted"} <= set(events)
    assert events["testExecuted"]["schema_version"] == 1
    assert "testerId" in events["testExecuted"]["schema"]["properties"]
    assert events["messageLogged"]["schema_version"] == 3  # see the slice's upcasters
    assert {"type": "system", "snapshot_schema_version": 2} in registry["aggregates"]
    projections = {p["name"]: p["read_models"] for p in registry["projections"]}
    assert projections["system_status"] == ["system_status"]
    assert projections["system_metrics"] == ["system_metrics"]
    sagas = {s["name"]: s for s in registry["sagas"]}
    assert sagas["system_saga"] == {
        "name": "system_saga",
        "events": ["multiEventEmitted"],
        "commands": ["emitMultipleEvents"],
    }


def test_it_publishes_who_reads_what(registry):
    reads = registry["reads"]

    assert reads["read_models"]["system_status"] == {
        "all_rows": ["developer", "system", "viewer"],
        "own_rows": ["tester"],
        "own_field": "last_tester_id",
        "redacted": {"viewer": ["last_message", "last_parameters"]},
    }
    assert reads["read_models"]["bank_totals"]["all_rows"] == ["banker"]
    assert reads["messages"] == {"banking": ["banker", "teller"], "system": ["developer", "system"]}
