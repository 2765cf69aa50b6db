"""Read scopes through the API, as an attacker would try them: every read model, command,
event and trace × every persona, against real rows in acme (tests/api/read_scopes.py says
who should see what)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.helpers import (
    assert_error,
    client_for,
    command_url,
    events_url,
    read_model_url,
    send,
    stored_command,
    stores_no_command,
)
from tests.api.read_scopes import (
    ALL,
    EVERYONE,
    MEMBERS,
    NONE,
    OUTSIDER,
    OUTSIDERS,
    OWN,
    READS,
    REDACTED,
    Seed,
    expected_read,
    join_flow,
    seed,
)


@pytest.fixture
def seeded(world: Any) -> Seed:
    return seed(world)


def _user_id(world: Any, persona: str) -> str:
    return str(world[persona].user.pk)


# --- read models -----------------------------------------------------------------------------
@pytest.mark.parametrize("persona", EVERYONE)
def test_each_role_reads_each_read_model_exactly_as_declared(world, seeded, persona):
    client, ada = client_for(world[persona]), client_for(world["ada"])
    for name in READS:
        expected = expected_read(name, persona)
        key = seeded.keys[name]
        listed, detail = client.get(read_model_url(name)), client.get(read_model_url(name, key))
        if expected == OUTSIDER:
            assert_error(listed, 403, "not_a_member")
            assert_error(detail, 403, "not_a_member")
            continue
        if expected == NONE:
            assert_error(listed, 403, "read_not_allowed")
            assert_error(detail, 403, "read_not_allowed")
            continue
        assert listed.status_code == 200, (name, persona, listed.json())
        assert detail.status_code == 200, (name, persona, detail.json())
        # Fields: everything the admin sees, with the role's redacted fields null.
        full = ada.get(read_model_url(name, key)).json()
        hidden = REDACTED.get((name, persona), set())
        assert detail.json() == {k: (None if k in hidden else v) for k, v in full.items()}, (name, persona)
        assert all(row[k] is None for row in listed.json()["results"] for k in hidden)
        if expected == OWN:
            mine = _user_id(world, persona)
            assert listed.json()["results"], name
            assert {row["last_tester_id"] for row in listed.json()["results"]} == {mine}


def test_a_tester_sees_its_own_system_row_and_not_one_another_user_tested(world, seeded):
    alice = client_for(world["alice"])

    own = alice.get(read_model_url("system_status", seeded.alice_system))
    other = alice.get(read_model_url("system_status", seeded.dave_system))
    filtered = alice.get(read_model_url("system_status") + f"?last_tester_id={_user_id(world, 'dave')}")

    assert own.status_code == 200 and own.json()["last_parameters"] == {"token": "alice-typed-this"}
    assert_error(other, 404, "not_found")  # exactly as a row that does not exist
    assert filtered.status_code == 200 and filtered.json()["results"] == []
    assert (
        client_for(world["dave"]).get(read_model_url("system_status", seeded.dave_system)).status_code == 200
    )


def test_a_viewer_sees_results_but_not_what_testers_typed(world, seeded):
    row = client_for(world["vera"]).get(read_model_url("system_status", seeded.dave_system)).json()

    assert (row["last_message"], row["last_parameters"]) == (None, None)
    assert row["last_result"] == "success" and row["messages_logged"] == 1
    assert "dave's private note" not in str(row) and "dave-typed-this" not in str(row)


def test_a_redacted_field_cannot_be_used_as_a_filter_to_guess_it(world, seeded, monkeypatch):
    from commands_app.domain.reads import ReadRule
    from commands_app.registry import get_registry

    rule = get_registry().read_rules["system_status"]
    hiding_the_tester = ReadRule(
        all_rows=rule.all_rows,
        own_rows=rule.own_rows,
        own_field=rule.own_field,
        redacted={"viewer": frozenset({"last_tester_id"})},
    )
    monkeypatch.setitem(get_registry().read_rules, "system_status", hiding_the_tester)
    dave_id = _user_id(world, "dave")

    guessed = client_for(world["vera"]).get(read_model_url("system_status") + f"?last_tester_id={dave_id}")
    allowed = client_for(world["dave"]).get(read_model_url("system_status") + f"?last_tester_id={dave_id}")

    assert_error(guessed, 400, "validation_error")
    assert allowed.status_code == 200 and allowed.json()["results"]


@pytest.mark.parametrize("persona", ["alice", "dave", "vera", "sam"])
def test_a_role_that_may_not_read_a_model_cannot_park_a_wait_on_it(world, persona):
    # Refused before any waiting: were it waiting, this would answer 503 after 30 s.
    response = client_for(world[persona]).get(
        read_model_url("account_balances") + "?min_position=999999999&wait=30"
    )

    assert_error(response, 403, "read_not_allowed")


def test_only_bankers_and_admins_read_the_bank_totals(world, seeded):
    for persona, status in (("bea", 200), ("ada", 200), ("root", 200), ("tom", 403), ("dave", 403)):
        assert client_for(world[persona]).get(read_model_url("bank_totals")).status_code == status, persona


# --- commands --------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", MEMBERS)
def test_each_member_lists_and_opens_exactly_the_commands_it_may_see(world, seeded, persona):
    client = client_for(world[persona])
    visible = seeded.labels_seen_by(persona)
    ids = {label: c["id"] for label, c in seeded.commands.items()}

    listed = client.get("/t/acme/api/commands/?limit=500")

    assert listed.status_code == 200
    listed_ids = {c["id"] for c in listed.json()["results"]}
    assert {label for label, cid in ids.items() if cid in listed_ids} == visible
    for label, command_id in ids.items():
        response = client.get(command_url(command_id))
        if label in visible:
            assert response.status_code == 200, (persona, label)
        else:
            assert_error(response, 404, "not_found")


def test_a_tester_lists_only_the_commands_it_sent(world, seeded):
    listed = client_for(world["alice"]).get("/t/acme/api/commands/?limit=500").json()["results"]

    assert listed and {c["metadata"]["user_id"] for c in listed} == {_user_id(world, "alice")}


@pytest.mark.parametrize("persona", OUTSIDERS)
def test_outsiders_read_no_command(world, seeded, persona):
    client = client_for(world[persona])

    assert_error(client.get("/t/acme/api/commands/"), 403, "not_a_member")
    assert_error(client.get(command_url(seeded.commands["dave_test"]["id"])), 403, "not_a_member")


def test_a_wait_on_a_command_one_may_not_see_answers_404_at_once(world, seeded):
    response = client_for(world["alice"]).get(command_url(seeded.commands["dave_test"]["id"]) + "?wait=30")

    assert_error(response, 404, "not_found")


# --- events and traces -----------------------------------------------------------------------
@pytest.mark.parametrize("persona", MEMBERS)
def test_each_member_reads_exactly_the_events_it_may_see(world, seeded, persona):
    client = client_for(world[persona])
    visible = seeded.labels_seen_by(persona)

    response = client.get(events_url() + f"?after={seeded.start}&limit=1000")

    assert response.status_code == 200
    by_command = {e["command_id"] for e in response.json()["results"]}
    assert {label for label, c in seeded.commands.items() if c["id"] in by_command} == visible
    for label, event_ids in seeded.events.items():
        detail = client.get(events_url() + f"{event_ids[0]}/")
        if label in visible:
            assert detail.status_code == 200, (persona, label)
        else:
            assert_error(detail, 404, "not_found")


@pytest.mark.parametrize("persona", MEMBERS)
def test_each_member_traces_exactly_the_flows_it_may_see(world, seeded, persona):
    client = client_for(world[persona])
    visible = seeded.labels_seen_by(persona)

    for label, command in seeded.commands.items():
        response = client.get(f"/t/acme/api/traces/{command['correlation_id']}/")
        if label in visible:
            assert response.status_code == 200, (persona, label)
            node_ids = _node_ids(response.json()["roots"])
            assert command["id"] in node_ids
        else:
            assert_error(response, 404, "not_found")


def _node_ids(nodes: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        found.add(node["id"])
        found |= _node_ids(node["children"])
    return found


# --- flows: client-supplied correlation and causation ids -------------------------------------
def _flow_error(response: Any, field: str) -> str:
    error = assert_error(response, 400, "validation_error")
    return error["details"]["fields"]["metadata"][field][0]


def test_a_tester_cannot_graft_a_command_into_another_users_flow(world, seeded):
    alice = client_for(world["alice"])
    with stores_no_command(world.acme):
        foreign = send(
            alice,
            "logMessage",
            {"message": "grafted"},
            metadata={"correlation_id": seeded.commands["dave_test"]["correlation_id"]},
        )
        unknown = send(
            alice, "logMessage", {"message": "grafted"}, metadata={"correlation_id": str(uuid.uuid4())}
        )

    # "not yours" and "does not exist" answer alike.
    assert _flow_error(foreign, "correlation_id") == _flow_error(unknown, "correlation_id")


def test_a_causation_id_must_name_a_message_the_caller_may_see(world, seeded):
    tom = client_for(world["tom"])
    with stores_no_command(world.acme):
        foreign_event = send(
            tom,
            "depositMoney",
            {"accountId": seeded.keys["account_balances"], "amount": 1},
            metadata={"causation_id": seeded.events["dave_log"][0]},
        )
        unknown = send(
            tom,
            "depositMoney",
            {"accountId": seeded.keys["account_balances"], "amount": 1},
            metadata={"causation_id": str(uuid.uuid4())},
        )

    assert _flow_error(foreign_event, "causation_id") == _flow_error(unknown, "causation_id")


def test_a_flow_of_another_tenant_is_unknown_here(world):
    from tests.api.helpers import submit_and_process

    theirs = submit_and_process(client_for(world["bob"]), "logMessage", {"message": "globex"}, world.globex)

    with stores_no_command(world.acme):
        response = send(
            client_for(world["dave"]),
            "logMessage",
            {"message": "x"},
            metadata={"correlation_id": theirs["correlation_id"], "causation_id": theirs["id"]},
        )

    assert set(assert_error(response, 400, "validation_error")["details"]["fields"]["metadata"]) == {
        "correlation_id",
        "causation_id",
    }


def test_a_member_continues_a_flow_it_may_see(world, seeded):
    alice_flow = seeded.commands["alice_test"]
    own = join_flow(
        world, "alice", alice_flow["correlation_id"], "follow-up", causation_id=seeded.events["alice_test"][0]
    )
    # A developer reads every system message, so it may join alice's flow too.
    developer = join_flow(world, "dave", alice_flow["correlation_id"], "help")

    assert own.status_code == 202, own.json()
    assert own.json()["correlation_id"] == alice_flow["correlation_id"]
    assert stored_command(world.acme, own.json()["id"]).causation_id == uuid.UUID(
        seeded.events["alice_test"][0]
    )
    assert developer.status_code == 202, developer.json()


def test_reusing_the_id_of_a_command_one_may_not_see_returns_nothing_of_it(world, seeded):
    dave_test = seeded.commands["dave_test"]

    response = send(client_for(world["alice"]), "executeTest", dave_test["payload"], id=dave_test["id"])

    error = assert_error(response, 409, "idempotency_conflict")
    assert "dave" not in str(error) and "dave-typed-this" not in str(error)
    assert stored_command(world.acme, dave_test["id"]).metadata["username"] == "dave"


def test_the_seed_holds_a_row_of_every_read_model_the_matrix_reads(world, seeded):
    ada = client_for(world["ada"])
    for name, key in seeded.keys.items():
        assert ada.get(read_model_url(name, key)).status_code == 200, name
    assert set(READS) == set(seeded.keys)
    assert {ALL, OWN, NONE} >= {expected_read(n, p) for n in READS for p in MEMBERS}


def test_the_commands_a_member_sent_are_found_by_an_index(world):
    """The own-commands filter must match the expression index (commands_app 0004), or every
    tester's list would scan the whole command table."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from commands_app.models import Command
    from commands_app.read_policy import Reader, visible_commands

    with schema_context(world.acme.schema_name):
        # Unordered: on a near-empty table the planner may as well walk the created_at index
        # and filter (commands_app 0005); what matters is that the filter matches this index.
        qs = Command.objects.filter(visible_commands(Reader(role="tester", user_id="7"))).order_by()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = qs.explain()

    assert "command_user_created" in plan, plan


def test_filters_never_reach_past_the_callers_scope(world, seeded):
    alice = client_for(world["alice"])
    dave_flow = seeded.commands["dave_test"]["correlation_id"]

    events = alice.get(events_url() + f"?after={seeded.start}&correlation_id={dave_flow}")
    transfers = alice.get("/t/acme/api/commands/?type=transferMoney")
    dave_system = alice.get(events_url() + f"?after={seeded.start}&aggregate_id={seeded.dave_system}")

    assert events.status_code == 200 and events.json()["results"] == []
    assert transfers.status_code == 200 and transfers.json()["results"] == []
    assert dave_system.status_code == 200 and dave_system.json()["results"] == []
