"""A snapshot restores exactly the replayed state, at every point of a realistic stream."""

from __future__ import annotations

import json
import uuid

import pytest

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.flow import InMemoryFlow
from commands_app.domain.registry import Registry
from commands_app.slices import banking, system
from commands_app.slices.banking.aggregate import Account, Transfer
from commands_app.slices.banking.payloads import (
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)

ALICE = uuid.UUID("a0000000-0000-4000-8000-00000000000a")  # EUR
BOB = uuid.UUID("b0000000-0000-4000-8000-00000000000b")  # EUR
CAROL = uuid.UUID("c0000000-0000-4000-8000-00000000000c")  # USD
COMPLETED, BACK_FROM_BOB, REFUNDED, DECLINED, FROM_CAROL = (
    uuid.UUID(f"70000000-0000-4000-8000-00000000000{n}") for n in range(1, 6)
)


@pytest.fixture(scope="module")
def flow() -> InMemoryFlow:
    """Alice's account goes through every event an account can record, and the transfers
    end each of the three ways."""
    flow = InMemoryFlow(Registry([system.SLICE, banking.SLICE]))

    def send(command, role="banker"):
        flow.send(command, role=role)
        flow.run()

    for account_id, owner, currency in (
        (ALICE, "Alice", "EUR"),
        (BOB, "Bob", "EUR"),
        (CAROL, "Carol", "USD"),
    ):
        send(OpenAccount(account_id=account_id, owner=owner, currency=currency))
    send(DepositMoney(account_id=ALICE, amount=1_000))
    send(DepositMoney(account_id=CAROL, amount=50))
    send(WithdrawMoney(account_id=ALICE, amount=100))
    transfers = [
        (COMPLETED, ALICE, BOB, 200),  # debited, credited
        (BACK_FROM_BOB, BOB, ALICE, 50),  # Alice credited
        (REFUNDED, ALICE, CAROL, 100),  # Carol keeps USD: credit declined, Alice refunded
        (DECLINED, ALICE, BOB, 10_000),  # insufficient funds: Alice declines the debit
        (FROM_CAROL, CAROL, ALICE, 5),  # Alice keeps EUR: she declines the credit
    ]
    for transfer_id, source, target, amount in transfers:
        send(
            TransferMoney(
                transfer_id=transfer_id, from_account_id=source, to_account_id=target, amount=amount
            ),
            role="teller",
        )
    send(WithdrawMoney(account_id=ALICE, amount=750))
    send(CloseAccount(account_id=ALICE))
    return flow


def _exact_through_json(aggregate: Aggregate) -> None:
    stored = json.loads(json.dumps(aggregate.snapshot_state()))
    restored = type(aggregate).from_snapshot(stored)
    assert restored == aggregate
    assert restored.snapshot_state() == aggregate.snapshot_state()


def _every_prefix(flow: InMemoryFlow, aggregate_cls: type[Aggregate], aggregate_id: uuid.UUID) -> int:
    stream = flow.store.read_stream(aggregate_cls.TYPE, aggregate_id)
    replayed = aggregate_cls(id=aggregate_id)
    _exact_through_json(replayed)
    for rec in stream:
        replayed.evolve(rec.event, rec.version)
        _exact_through_json(replayed)
    return len(stream)


def test_the_stream_holds_every_kind_of_account_event(flow):
    kinds = {rec.type for rec in flow.store.read_stream("account", ALICE)}

    assert kinds == {e.TYPE for e in banking.SLICE.events if e.TYPE.startswith(("account", "money"))}


@pytest.mark.parametrize("account_id", [ALICE, BOB, CAROL])
def test_an_account_snapshot_is_exact_at_every_version(flow, account_id):
    assert _every_prefix(flow, Account, account_id) >= 3
    final = flow.store.load(Account, account_id)
    if account_id == ALICE:
        assert final.closed and final.balance == 0
        assert set(final.debits) == {COMPLETED, REFUNDED}
        assert final.refunds == {REFUNDED}
        assert set(final.credits) == {BACK_FROM_BOB}
        assert final.declined == {DECLINED, FROM_CAROL}


@pytest.mark.parametrize(
    ("transfer_id", "outcome"),
    [
        (COMPLETED, "completed"),
        (BACK_FROM_BOB, "completed"),
        (REFUNDED, "refunded"),
        (DECLINED, "declined"),
        (FROM_CAROL, "refunded"),
    ],
)
def test_a_transfer_snapshot_is_exact_at_every_version(flow, transfer_id, outcome):
    assert _every_prefix(flow, Transfer, transfer_id) == 2
    assert flow.store.load(Transfer, transfer_id).status == outcome
