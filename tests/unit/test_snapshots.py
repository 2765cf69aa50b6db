"""Restoring an aggregate from its snapshot gives exactly the state a replay gives.

The reference platform lost fields here. Every registered aggregate type needs a sample
stream below, so a new aggregate without one fails `test_every_aggregate_has_a_sample_stream`.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.flow import InMemoryFlow
from commands_app.domain.messages import DomainEvent
from commands_app.domain.registry import Registry
from commands_app.registry import get_registry
from commands_app.slices import banking, system
from commands_app.slices.banking.aggregate import Account, Transfer
from commands_app.slices.banking.payloads import DepositMoney, OpenAccount, TransferMoney, WithdrawMoney
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import (
    MessageLogged,
    MultiEventEmitted,
    RetryableTestExecuted,
    TestExecuted,
)

SYSTEM = uuid.UUID("00000000-0000-4000-8000-000000000004")
AT = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def _system_stream() -> list[DomainEvent]:
    test_id = uuid.uuid4()
    return [
        MessageLogged(text="boot", system_id=SYSTEM),
        MessageLogged(text="careful", level="warning", system_id=SYSTEM),
        MultiEventEmitted(index=0, system_id=SYSTEM),
        TestExecuted(
            test_id=test_id,
            test_name="t",
            tester_id="7",
            result="failure",
            executed_at=AT,
            number_executed_tests=1,
            system_id=SYSTEM,
            parameters={"a": [1, 2]},
        ),
        RetryableTestExecuted(test_id=uuid.uuid4(), test_name="r", result="success", executed_at=AT),
        MessageLogged(text="done", level="error", system_id=SYSTEM),
    ]


EUR_A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
EUR_B = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
TRANSFER = uuid.UUID("00000000-0000-4000-8000-0000000000c1")


@functools.cache
def _banking_flow() -> InMemoryFlow:
    """An account through deposits, withdrawals and transfers that end each of the three
    ways (completed, refunded to a missing target, declined for lack of funds)."""
    flow = InMemoryFlow(Registry([system.SLICE, banking.SLICE]))
    for command in (
        OpenAccount(account_id=EUR_A, owner="Ada", currency="EUR"),
        OpenAccount(account_id=EUR_B, owner="Bob", currency="EUR"),
        DepositMoney(account_id=EUR_A, amount=10_000),
        WithdrawMoney(account_id=EUR_A, amount=1_234),
        TransferMoney(transfer_id=TRANSFER, from_account_id=EUR_A, to_account_id=EUR_B, amount=500),
        TransferMoney(transfer_id=uuid.uuid4(), from_account_id=EUR_A, to_account_id=uuid.uuid4(), amount=70),
        TransferMoney(transfer_id=uuid.uuid4(), from_account_id=EUR_A, to_account_id=EUR_B, amount=10**9),
    ):
        flow.send(command, role="banker")
        flow.run()
    return flow


def _stream_of(aggregate_type: str, aggregate_id: uuid.UUID) -> Callable[[], list[DomainEvent]]:
    return lambda: [rec.event for rec in _banking_flow().store.read_stream(aggregate_type, aggregate_id)]


# aggregate type -> (class, aggregate id, sample stream). Extend when adding an aggregate.
SAMPLE_STREAMS: dict[str, tuple[type[Aggregate], uuid.UUID, Callable[[], list[DomainEvent]]]] = {
    "system": (System, SYSTEM, _system_stream),
    "account": (Account, EUR_A, _stream_of("account", EUR_A)),
    "transfer": (Transfer, TRANSFER, _stream_of("transfer", TRANSFER)),
}


def _through_storage(state: dict) -> dict:
    """What a snapshot row gives back: JSON written by Django's encoder, read by json."""
    return json.loads(json.dumps(state, cls=DjangoJSONEncoder))


def test_every_aggregate_has_a_sample_stream():
    assert set(get_registry().aggregates) <= set(SAMPLE_STREAMS)


@pytest.mark.parametrize("aggregate_type", sorted(SAMPLE_STREAMS))
def test_restoring_a_snapshot_equals_replaying_at_every_version(aggregate_type: str):
    cls, aggregate_id, stream = SAMPLE_STREAMS[aggregate_type]
    events = stream()
    assert len(events) >= 2, "a sample stream should exercise the aggregate"
    replayed = cls(id=aggregate_id)
    for version, event in enumerate(events, start=1):
        replayed.evolve(event, version)
        restored = cls.from_snapshot(_through_storage(replayed.snapshot_state()))
        assert restored == replayed
        assert type(restored) is cls


def test_a_v1_system_snapshot_is_upcast_to_the_replayed_state(registry):
    replayed = System(id=SYSTEM)
    for version, event in enumerate([MessageLogged(text="a"), MessageLogged(text="b")], start=1):
        replayed.evolve(event, version)
    v1_state = _through_storage(replayed.snapshot_state())
    del v1_state["messages_by_level"]  # the shape before v2

    upcast = registry.upcast_snapshot(System, 1, v1_state)
    assert upcast is not None
    assert System.from_snapshot(upcast) == replayed


def test_a_snapshot_without_an_upcaster_path_is_refused(registry):
    assert registry.upcast_snapshot(System, 0, {"id": str(SYSTEM)}) is None
    assert registry.upcast_snapshot(System, System.SNAPSHOT_SCHEMA_VERSION + 1, {}) is None
