"""`decide`, the one decision step the worker's batch and one-by-one paths and the
in-memory flow all run: the events to append and their metadata, or the domain error."""

from __future__ import annotations

import uuid

import pytest

from commands_app.domain.errors import DomainError
from commands_app.domain.store import Decision, decide
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import EmitMultipleEvents, LogMessage, SimulateFailure
from tests.unit.conftest import make_ctx

SYSTEM = uuid.UUID("00000000-0000-4000-8000-000000000001")


def test_it_returns_the_events_and_where_they_came_from_and_leaves_the_aggregate_alone(registry):
    system = System(id=SYSTEM)
    ctx = make_ctx(user_id="7")
    decision = decide(registry, system, EmitMultipleEvents(count=2, system_id=SYSTEM), ctx)
    assert isinstance(decision, Decision)
    assert [event.TYPE for event in decision.events] == ["multiEventEmitted", "multiEventEmitted"]
    assert decision.metadata == {
        "command_id": str(ctx.command_id),
        "command_type": "emitMultipleEvents",
        "correlation_id": str(ctx.correlation_id),
        "causation_id": str(ctx.command_id),
        "user_id": "7",
        "role": "tester",
    }
    assert system == System(id=SYSTEM)


def test_a_domain_error_is_returned_not_raised(registry):
    system = System(id=SYSTEM)
    refusal = decide(registry, system, SimulateFailure(system_id=SYSTEM), make_ctx(role="system"))
    assert isinstance(refusal, DomainError)
    assert refusal.code == "simulated_failure"


def test_a_bug_in_a_handler_propagates(registry, monkeypatch):
    def broken(system, cmd, ctx):
        raise KeyError("oops")

    monkeypatch.setitem(registry.handlers, LogMessage, broken)
    with pytest.raises(KeyError):
        decide(registry, System(id=SYSTEM), LogMessage(message="x", system_id=SYSTEM), make_ctx())
