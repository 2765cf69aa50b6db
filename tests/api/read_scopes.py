"""What the read-scope tests expect, written out by hand (not derived from the policy), and
one seeded tenant to check it against.

The expectations are the README's "Who reads what" table: if the slices' READS change,
this table and the README change with them, on purpose.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django_tenants.utils import schema_context

from tests.api.helpers import client_for, head_position, process, project, send

ALL, OWN, NONE, OUTSIDER = "all rows", "own rows", "nothing", "not a member"

MEMBERS = ("alice", "dave", "sam", "vera", "ada", "bea", "tom", "root")
OUTSIDERS = ("bob", "stan")
EVERYONE = MEMBERS + OUTSIDERS

_BANK = {"bea": ALL, "tom": ALL, "ada": ALL, "root": ALL}
READS: dict[str, dict[str, str]] = {
    "system_status": {"alice": OWN, "dave": ALL, "sam": ALL, "vera": ALL, "ada": ALL, "root": ALL},
    "system_metrics": {"alice": ALL, "dave": ALL, "sam": ALL, "vera": ALL, "ada": ALL, "root": ALL},
    "account_balances": _BANK,
    "account_statement": _BANK,
    "transfers": _BANK,
    "bank_totals": {"bea": ALL, "ada": ALL, "root": ALL},
}
REDACTED: dict[tuple[str, str], set[str]] = {
    ("system_status", "vera"): {"last_parameters", "last_message"},
}


def expected_read(read_model: str, persona: str) -> str:
    if persona in OUTSIDERS:
        return OUTSIDER
    return READS[read_model].get(persona, NONE)


# Which slices' commands and events each member reads in full (besides its own).
MESSAGES: dict[str, set[str]] = {
    "alice": set(),
    "dave": {"system"},
    "sam": {"system"},
    "vera": set(),
    "ada": {"system", "banking"},
    "bea": {"banking"},
    "tom": {"banking"},
    "root": {"system", "banking"},
}


@dataclass
class Seed:
    """Rows in acme: a test alice ran, a test and a log message of dave's, two accounts
    bea opened, tom's deposit and transfer; all processed and projected."""

    start: int
    commands: dict[str, dict[str, Any]]  # label -> the command as POST answered it
    slice_of: dict[str, str]  # label -> slice
    sender: dict[str, str]  # label -> persona
    keys: dict[str, str] = field(default_factory=dict)  # read model -> a seeded row's key
    alice_system: str = ""
    dave_system: str = ""
    events: dict[str, list[str]] = field(default_factory=dict)  # label -> its event ids

    def labels_seen_by(self, persona: str) -> set[str]:
        if persona in ("ada", "root"):
            return set(self.commands)
        return {
            label
            for label in self.commands
            if self.slice_of[label] in MESSAGES[persona] or self.sender[label] == persona
        }


def join_flow(
    world: Any, persona: str, correlation_id: str, message: str, causation_id: str | None = None
) -> Any:
    """`persona` sends a logMessage into the flow `correlation_id` (the POST's response)."""
    metadata = {"correlation_id": correlation_id}
    if causation_id is not None:
        metadata["causation_id"] = causation_id
    return send(client_for(world[persona]), "logMessage", {"message": message}, metadata=metadata)


def _sent(world: Any, persona: str, type_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = send(client_for(world[persona]), type_name, payload)
    assert response.status_code == 202, response.json()
    command = response.json()
    assert process(world.acme, command["id"]) in ("consumed", "processed"), command
    return command


def seed(world: Any) -> Seed:
    from events_app.models import Event
    from projections_app.models import StatementLine

    start = head_position(world.acme)
    alice_system, dave_system = str(uuid.uuid4()), str(uuid.uuid4())
    ann, ben = str(uuid.uuid4()), str(uuid.uuid4())
    transfer = str(uuid.uuid4())
    plan: list[tuple[str, str, str, str, dict[str, Any]]] = [
        (
            "alice_test",
            "alice",
            "system",
            "executeTest",
            {
                "testId": str(uuid.uuid4()),
                "testName": "alice's",
                "systemId": alice_system,
                "parameters": {"token": "alice-typed-this"},
            },
        ),
        (
            "dave_test",
            "dave",
            "system",
            "executeTest",
            {
                "testId": str(uuid.uuid4()),
                "testName": "dave's",
                "systemId": dave_system,
                "parameters": {"token": "dave-typed-this"},
            },
        ),
        (
            "dave_log",
            "dave",
            "system",
            "logMessage",
            {"message": "dave's private note", "systemId": dave_system},
        ),
        (
            "bea_open_ann",
            "bea",
            "banking",
            "openAccount",
            {"accountId": ann, "owner": "Ann Scope", "currency": "EUR"},
        ),
        (
            "bea_open_ben",
            "bea",
            "banking",
            "openAccount",
            {"accountId": ben, "owner": "Ben Scope", "currency": "EUR"},
        ),
        ("tom_deposit", "tom", "banking", "depositMoney", {"accountId": ann, "amount": 10_000}),
        (
            "tom_transfer",
            "tom",
            "banking",
            "transferMoney",
            {"transferId": transfer, "fromAccountId": ann, "toAccountId": ben, "amount": 2_500},
        ),
    ]
    commands, slice_of, sender = {}, {}, {}
    for label, persona, slice_name, type_name, payload in plan:
        commands[label] = _sent(world, persona, type_name, payload)
        slice_of[label], sender[label] = slice_name, persona
    project(world.acme)
    with schema_context(world.acme.schema_name):
        statement_line = StatementLine.objects.filter(account_id=ann).order_by("position").first()
        assert statement_line is not None
        events = {
            label: [str(e) for e in Event.objects.filter(command_id=c["id"]).values_list("id", flat=True)]
            for label, c in commands.items()
        }
    assert all(events.values()), events
    return Seed(
        start=start,
        commands=commands,
        slice_of=slice_of,
        sender=sender,
        keys={
            "system_status": alice_system,
            "system_metrics": "tenant",
            "account_balances": ann,
            "account_statement": str(statement_line.event_id),
            "transfers": transfer,
            "bank_totals": "EUR",
        },
        alice_system=alice_system,
        dave_system=dave_system,
        events=events,
    )
