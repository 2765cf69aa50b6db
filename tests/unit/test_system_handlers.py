"""Given events, when a command, then events: the system slice on the in-memory store."""

from __future__ import annotations

import uuid

import pytest

from commands_app.domain.errors import DomainError, RetryableDomainError
from commands_app.domain.store import execute
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import (
    EmitMultipleEvents,
    ExecuteRetryableTest,
    ExecuteTest,
    LogMessage,
    SimulateFailure,
    default_system_id,
)
from tests.unit.conftest import make_ctx

SYSTEM = uuid.UUID("00000000-0000-4000-8000-000000000001")


def test_it_logs_a_message(store, registry):
    recorded = execute(store, registry, LogMessage(message="hello", system_id=SYSTEM), make_ctx())
    assert [r.type for r in recorded] == ["messageLogged"]
    assert recorded[0].event.text == "hello"
    assert recorded[0].version == 1
    assert store.load(System, SYSTEM).messages_logged == 1


def test_it_uses_the_tenants_default_system_when_no_id_is_given(store, registry):
    recorded = execute(store, registry, LogMessage(message="hi"), make_ctx(tenant="acme"))
    expected = default_system_id("acme")
    assert recorded[0].stream_id == expected
    assert isinstance(expected, uuid.UUID)
    assert default_system_id("acme") == expected != default_system_id("globex")


def test_it_emits_as_many_events_as_asked_with_increasing_indexes(store, registry):
    recorded = execute(store, registry, EmitMultipleEvents(count=3, system_id=SYSTEM), make_ctx())
    assert [r.event.index for r in recorded] == [0, 1, 2]
    assert [r.version for r in recorded] == [1, 2, 3]


def test_it_counts_executed_tests_across_the_stream(store, registry):
    for expected in (1, 2, 3):
        (rec,) = execute(
            store,
            registry,
            ExecuteTest(test_id=uuid.uuid4(), test_name="t", system_id=SYSTEM),
            make_ctx(user_id="7"),
        )
        assert rec.event.number_executed_tests == expected
        assert rec.event.tester_id == "7"
        assert rec.event.result == "success"
    assert store.load(System, SYSTEM).number_executed_tests == 3


def test_a_test_can_be_reported_as_failed(store, registry):
    cmd = ExecuteTest(
        test_id=uuid.uuid4(),
        test_name="t",
        system_id=SYSTEM,
        parameters={"expectedResult": "failure"},
    )
    (rec,) = execute(store, registry, cmd, make_ctx())
    assert rec.event.result == "failure"
    assert rec.event.parameters == {"expectedResult": "failure"}


def test_a_test_needs_a_user(store, registry):
    with pytest.raises(DomainError) as err:
        execute(
            store,
            registry,
            ExecuteTest(test_id=uuid.uuid4(), test_name="t"),
            make_ctx(user_id=None),
        )
    assert err.value.code == "tester_required"


def test_simulated_failure_fails_with_a_domain_error_and_records_nothing(store, registry):
    with pytest.raises(DomainError) as err:
        execute(store, registry, SimulateFailure(system_id=SYSTEM), make_ctx(role="system"))
    assert err.value.code == "simulated_failure"
    assert store.read_stream("system", SYSTEM) == []


def test_retryable_test_fails_retryably_while_the_version_is_even(store, registry):
    cmd = ExecuteRetryableTest(test_id=uuid.uuid4(), test_name="r", system_id=SYSTEM)
    with pytest.raises(RetryableDomainError) as err:
        execute(store, registry, cmd, make_ctx(role="system"))
    assert err.value.details == {"version": 0}
    execute(store, registry, LogMessage(message="make it odd", system_id=SYSTEM), make_ctx())
    (rec,) = execute(store, registry, cmd, make_ctx(role="system"))
    assert rec.type == "retryableTestExecuted"
    assert rec.version == 2


def test_events_carry_the_command_as_causation_and_the_flow_as_correlation(store, registry):
    ctx = make_ctx()
    (rec,) = execute(store, registry, LogMessage(message="m", system_id=SYSTEM), ctx)
    assert rec.metadata["causation_id"] == str(ctx.command_id)
    assert rec.metadata["correlation_id"] == str(ctx.correlation_id)
    assert rec.metadata["user_id"] == ctx.user_id


def test_a_snapshot_restores_exactly_the_replayed_state(store, registry):
    execute(store, registry, LogMessage(message="a", system_id=SYSTEM), make_ctx())
    execute(store, registry, EmitMultipleEvents(count=2, system_id=SYSTEM), make_ctx())
    execute(
        store,
        registry,
        ExecuteTest(test_id=uuid.uuid4(), test_name="t", system_id=SYSTEM),
        make_ctx(),
    )
    replayed = store.load(System, SYSTEM)
    restored = System.from_snapshot(replayed.snapshot_state())
    assert restored == replayed
