"""Chained upcasting of the system slice's messageLogged (v1 → v2 → v3), checked at start-up."""

from __future__ import annotations

import copy
from typing import ClassVar

from commands_app.domain.messages import DomainEvent
from commands_app.domain.registry import Registry, Slice
from commands_app.slices.system.payloads import MessageLogged

V1 = {"message": "from the reference platform", "systemId": "00000000-0000-4000-8000-000000000003"}
V2 = {"text": "renamed", "systemId": "00000000-0000-4000-8000-000000000003"}


def test_a_v1_payload_reads_as_the_current_event(registry):
    event = registry.parse_event("messageLogged", 1, V1)
    assert event == MessageLogged(text="from the reference platform", level="info", system_id=V1["systemId"])


def test_each_stored_version_enters_the_chain_at_its_own_step(registry):
    assert registry.upcast("messageLogged", 2, V2) == {**V2, "level": "info"}
    current = {"text": "now", "level": "warning"}
    assert registry.upcast("messageLogged", 3, current) == current


def test_upcasting_never_changes_the_stored_payload(registry):
    stored = copy.deepcopy(V1)
    registry.upcast("messageLogged", 1, stored)
    assert stored == V1


def test_the_system_chain_is_contiguous(registry):
    assert MessageLogged.SCHEMA_VERSION == 3
    assert registry.problems() == []


class Shouted(DomainEvent):
    TYPE: ClassVar[str] = "shouted"
    SCHEMA_VERSION: ClassVar[int] = 3
    text: str


def _registry(upcasters: dict) -> Registry:
    return Registry(
        [
            Slice(
                name="s",
                aggregates=(),
                command_handlers={},
                events=(Shouted,),
                access={},
                upcasters=upcasters,
            )
        ]
    )


def test_start_up_checks_catch_gaps_duplicates_and_strays():
    gap = _registry({("shouted", 1): lambda p: p})
    assert ("intent.E009", "'shouted' is at v3 but has no upcaster from v2") in gap.problems()
    stray = _registry({("shouted", 1): lambda p: p, ("shouted", 2): lambda p: p, ("shouted", 3): lambda p: p})
    assert any(check == "intent.E008" for check, _ in stray.problems())
    unknown = _registry({("whispered", 1): lambda p: p})
    assert any(check == "intent.E007" for check, _ in unknown.problems())
    twice = Registry(
        [
            Slice(
                name="a",
                aggregates=(),
                command_handlers={},
                events=(Shouted,),
                access={},
                upcasters={("shouted", 1): lambda p: p, ("shouted", 2): lambda p: p},
            ),
            Slice(
                name="b",
                aggregates=(),
                command_handlers={},
                events=(),
                access={},
                upcasters={("shouted", 1): lambda p: p},
            ),
        ]
    )
    assert any(check == "intent.E006" for check, _ in twice.problems())
