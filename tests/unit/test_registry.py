"""The registry validates payloads, describes itself, and reports inconsistent slices."""

from __future__ import annotations

from typing import ClassVar

import pytest

from commands_app.domain.errors import InvalidPayload, UnknownCommandType
from commands_app.domain.messages import DomainEvent
from commands_app.domain.registry import Registry, Slice
from commands_app.slices import banking
from commands_app.slices.system import SLICE
from commands_app.slices.system.payloads import LogMessage


def test_the_system_slice_is_consistent(registry):
    assert registry.problems() == []


def test_it_names_the_fields_that_fail_validation(registry):
    with pytest.raises(InvalidPayload) as err:
        registry.parse_command("emitMultipleEvents", {"count": 101, "surprise": 1})
    assert set(err.value.details["fields"]) == {"count", "surprise"}


def test_it_rejects_a_payload_that_is_not_an_object(registry):
    with pytest.raises(InvalidPayload):
        registry.parse_command("logMessage", ["not", "an", "object"])


def test_it_rejects_unknown_command_types_and_lists_the_known_ones(registry):
    with pytest.raises(UnknownCommandType) as err:
        registry.parse_command("launchRockets", {})
    assert "logMessage" in err.value.details["known"]
    assert err.value.details["did_you_mean"] is None


BANK = Registry([SLICE, banking.SLICE])
INTERNAL_TYPES = {name for name, cls in BANK.commands.items() if cls.INTERNAL}


def test_an_unknown_type_lists_only_public_commands():
    with pytest.raises(UnknownCommandType) as err:
        BANK.command_class("debitAccount")

    known = set(err.value.details["known"])
    assert INTERNAL_TYPES and not INTERNAL_TYPES & known
    assert known == set(BANK.commands) - INTERNAL_TYPES


@pytest.mark.parametrize(
    ("role", "sent", "known", "guess"),
    [
        ("teller", "depositMoni", {"depositMoney", "withdrawMoney", "transferMoney"}, "depositMoney"),
        ("teller", "DEPOSITMONEY", {"depositMoney", "withdrawMoney", "transferMoney"}, "depositMoney"),
        ("tester", "logMesage", {"logMessage", "emitMultipleEvents", "executeTest"}, "logMessage"),
        # a near miss of a command the role may not send is no suggestion of something else
        ("teller", "openAcount", {"depositMoney", "withdrawMoney", "transferMoney"}, None),
        ("viewer", "logMessag", set(), None),
        (None, "logMessag", set(), None),
    ],
)
def test_an_unknown_type_lists_what_the_role_may_send_and_the_closest(role, sent, known, guess):
    with pytest.raises(UnknownCommandType) as err:
        BANK.authorize(role, sent)

    assert set(err.value.details["known"]) == known
    assert err.value.details["did_you_mean"] == guess
    assert (f"Did you mean '{guess}'?" in err.value.message) is (guess is not None)


def test_an_internal_command_is_never_suggested_even_to_the_admin():
    with pytest.raises(UnknownCommandType) as err:
        BANK.authorize("admin", "debitAccountForTransfe")

    assert err.value.details["did_you_mean"] is None
    assert not INTERNAL_TYPES & set(err.value.details["known"])


def test_it_accepts_the_reference_wire_names(registry):
    cmd = registry.parse_command(
        "executeTest", {"testId": "6f1c1b8e-2f4e-4d59-9a57-3f0c1e7b9d10", "testName": "x"}
    )
    assert cmd.to_wire() == {"testId": "6f1c1b8e-2f4e-4d59-9a57-3f0c1e7b9d10", "testName": "x"}


def test_the_published_schema_is_the_validating_schema(registry):
    described = {c["type"]: c for c in registry.describe()["commands"]}
    count = described["emitMultipleEvents"]["schema"]["properties"]["count"]
    assert (count["minimum"], count["maximum"]) == (1, 100)
    assert described["executeTest"]["roles"] == ["admin", "developer", "tester"]


class MessageLoggedV3(DomainEvent):
    TYPE: ClassVar[str] = "messageLogged"
    SCHEMA_VERSION: ClassVar[int] = 3
    text: str


def test_it_reports_a_gap_in_an_upcaster_chain():
    broken = Slice(
        name="broken",
        aggregates=(),
        command_handlers={},
        events=(MessageLoggedV3,),
        access={},
        upcasters={("messageLogged", 1): lambda p: p},  # v2 -> v3 is missing
    )
    problems = Registry([broken]).problems()
    assert ("intent.E009", "'messageLogged' is at v3 but has no upcaster from v2") in problems


def test_it_chains_upcasters_without_touching_the_stored_payload():
    chained = Slice(
        name="chained",
        aggregates=(),
        command_handlers={},
        events=(MessageLoggedV3,),
        access={},
        upcasters={
            ("messageLogged", 1): lambda p: {"msg": p.pop("message")},
            ("messageLogged", 2): lambda p: {"text": p.pop("msg")},
        },
    )
    registry = Registry([chained])
    stored = {"message": "old"}
    assert registry.parse_event("messageLogged", 1, stored) == MessageLoggedV3(text="old")
    assert stored == {"message": "old"}


def test_it_reports_a_command_registered_twice():
    problems = Registry([SLICE, SLICE]).problems()
    assert any(check_id == "intent.E001" and "logMessage" in message for check_id, message in problems)


def test_it_reports_a_role_granted_a_command_without_handler():
    lonely = Slice(
        name="lonely",
        aggregates=(),
        command_handlers={},
        events=(),
        access={"tester": frozenset({LogMessage})},
    )
    assert any(check_id == "intent.E005" for check_id, _ in Registry([lonely]).problems())


def test_internal_commands_are_refused_for_every_role_and_cannot_be_granted():
    from commands_app.domain.errors import Forbidden
    from commands_app.domain.messages import DomainCommand

    class Nudge(DomainCommand):
        TYPE: ClassVar[str] = "nudge"
        AGGREGATE_TYPE: ClassVar[str] = "system"
        INTERNAL: ClassVar[bool] = True

    sl = Slice(
        name="internal",
        aggregates=(),
        command_handlers={Nudge: lambda *_: []},
        events=(),
        access={"tester": frozenset({Nudge})},
    )
    registry = Registry([SLICE, sl])
    assert ("intent.E013", "role 'tester' is granted 'nudge', an internal command") in registry.problems()
    for role in ("admin", "tester", None):
        with pytest.raises(Forbidden) as err:
            registry.authorize(role, "nudge")
        assert err.value.code == "internal_command"
    assert registry.roles_for("nudge") == []
