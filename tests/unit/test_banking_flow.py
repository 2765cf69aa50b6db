"""Whole transfers in memory: commands, the transfer saga and its internal steps together.

Every transfer ends completed, refunded or declined; money is never created or lost.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from commands_app.domain.errors import Forbidden
from commands_app.domain.flow import InMemoryFlow, SentCommand
from commands_app.domain.messages import DomainCommand
from commands_app.domain.registry import Registry
from commands_app.slices import banking, system
from commands_app.slices.banking.aggregate import Account, Transfer
from commands_app.slices.banking.payloads import (
    CloseAccount,
    CreditAccountForTransfer,
    DebitAccountForTransfer,
    DepositMoney,
    MarkTransferCompleted,
    MarkTransferDeclined,
    MarkTransferRefunded,
    OpenAccount,
    RefundAccountForTransfer,
    TransferMoney,
    WithdrawMoney,
)
from commands_app.slices.banking.sagas import TRANSFER_SAGA

ALICE = uuid.UUID("a0000000-0000-4000-8000-00000000000a")  # EUR
BOB = uuid.UUID("b0000000-0000-4000-8000-00000000000b")  # EUR
CAROL = uuid.UUID("c0000000-0000-4000-8000-00000000000c")  # USD
NOBODY = uuid.UUID("d0000000-0000-4000-8000-00000000000d")  # never opened
T1 = uuid.UUID("70000000-0000-4000-8000-000000000001")

REGISTRY = Registry([system.SLICE, banking.SLICE])


def bank(**deposits: int) -> InMemoryFlow:
    """Alice and Bob in EUR, Carol in USD, with the given opening deposits, all settled."""
    flow = InMemoryFlow(REGISTRY)
    for account_id, owner, currency in (
        (ALICE, "alice", "EUR"),
        (BOB, "bob", "EUR"),
        (CAROL, "carol", "USD"),
    ):
        flow.send(OpenAccount(account_id=account_id, owner=owner, currency=currency), role="banker")
        if deposits.get(owner):
            flow.send(DepositMoney(account_id=account_id, amount=deposits[owner]), role="teller")
    flow.run()
    return flow


def send(flow: InMemoryFlow, command: DomainCommand, role: str = "banker") -> SentCommand:
    sent = flow.send(command, role=role)
    flow.run()
    return sent


def transfer(
    flow: InMemoryFlow, source: uuid.UUID, target: uuid.UUID, amount: int, **extra: Any
) -> SentCommand:
    command = TransferMoney(
        transfer_id=T1, from_account_id=source, to_account_id=target, amount=amount, **extra
    )
    return send(flow, command, role="teller")


def balance(flow: InMemoryFlow, account_id: uuid.UUID) -> int:
    return flow.store.load(Account, account_id).balance


def steps(flow: InMemoryFlow) -> list[str]:
    """The saga's commands, in the order it issued them, with how each ended."""
    return [f"{sent.command.TYPE}:{sent.status}" for sent in flow.issued_by(TRANSFER_SAGA.name)]


def saga_state(flow: InMemoryFlow, transfer_id: uuid.UUID = T1) -> dict[str, Any]:
    key = (TRANSFER_SAGA.name, str(transfer_id))
    assert key in flow.finished, "the saga instance did not finish"
    return flow.saga_states[key]


def advance(flow: InMemoryFlow, count: int) -> None:
    """Let the flow take exactly `count` steps (handle one command, or feed the sagas once),
    leaving the rest of the process in flight."""
    for _ in range(count):
        flow.step()


# --- the three outcomes --------------------------------------------------------------------
def test_a_transfer_between_two_open_accounts_completes():
    flow = bank(alice=1_000)

    sent = transfer(flow, ALICE, BOB, 250)

    assert sent.status == "processed"
    assert (balance(flow, ALICE), balance(flow, BOB)) == (750, 250)
    assert flow.store.load(Transfer, T1).status == "completed"
    assert steps(flow) == [
        "debitAccountForTransfer:processed",
        "creditAccountForTransfer:processed",
        "markTransferCompleted:processed",
    ]
    assert saga_state(flow) == {
        "from": str(ALICE),
        "to": str(BOB),
        "amount": 250,
        "currency": "EUR",
        "step": "completed",
    }


def test_every_event_of_a_transfer_carries_the_requests_correlation_id():
    flow = bank(alice=1_000)

    sent = transfer(flow, ALICE, BOB, 250)

    legs = [
        rec for rec in flow.events() if getattr(rec.event, "transfer_id", None) == T1 or rec.stream_id == T1
    ]
    assert len(legs) == 4  # requested, debited, credited, completed
    assert {rec.metadata["correlation_id"] for rec in legs} == {str(sent.id)}


@pytest.mark.parametrize(
    ("target", "prepare", "reason"),
    [
        (BOB, "close bob", "account_closed"),
        (NOBODY, None, "account_not_found"),
        (CAROL, None, "currency_mismatch"),
    ],
)
def test_a_transfer_the_target_cannot_take_is_refunded_to_the_source(target, prepare, reason):
    flow = bank(alice=1_000, carol=40)
    if prepare == "close bob":
        send(flow, CloseAccount(account_id=BOB))

    transfer(flow, ALICE, target, 300)

    assert balance(flow, ALICE) == 1_000
    assert balance(flow, target) == (40 if target == CAROL else 0)
    settled = flow.store.load(Transfer, T1)
    assert (settled.status, settled.reason) == ("refunded", reason)
    assert steps(flow) == [
        "debitAccountForTransfer:processed",
        "creditAccountForTransfer:processed",
        "refundAccountForTransfer:processed",
        "markTransferRefunded:processed",
    ]
    assert saga_state(flow)["step"] == "refunded"


@pytest.mark.parametrize(
    ("source", "prepare", "extra", "reason"),
    [
        (ALICE, None, {}, "insufficient_funds"),
        (NOBODY, None, {}, "account_not_found"),
        (BOB, "close bob", {}, "account_closed"),
        (ALICE, None, {"currency": "USD"}, "currency_mismatch"),
    ],
)
def test_a_transfer_the_source_cannot_pay_is_declined_and_moves_nothing(source, prepare, extra, reason):
    flow = bank(alice=100)
    if prepare == "close bob":
        send(flow, CloseAccount(account_id=BOB))
    target = CAROL if source == BOB else BOB

    transfer(flow, source, target, 101 if not extra else 50, **extra)

    assert (balance(flow, ALICE), balance(flow, BOB), balance(flow, CAROL)) == (100, 0, 0)
    settled = flow.store.load(Transfer, T1)
    assert (settled.status, settled.reason) == ("declined", reason)
    # Declined means the source was never debited: nothing to refund, no credit attempted.
    assert steps(flow) == ["debitAccountForTransfer:processed", "markTransferDeclined:processed"]
    assert saga_state(flow)["step"] == "declined"


def test_a_transfer_naming_the_sources_currency_completes():
    flow = bank(alice=100)

    transfer(flow, ALICE, BOB, 60, currency="EUR")

    assert flow.store.load(Transfer, T1).status == "completed"
    assert (balance(flow, ALICE), balance(flow, BOB)) == (40, 60)


def test_a_source_closed_while_its_money_is_in_flight_still_gets_it_back():
    flow = bank(alice=100)
    send(flow, CloseAccount(account_id=BOB))
    flow.send(
        TransferMoney(transfer_id=T1, from_account_id=ALICE, to_account_id=BOB, amount=100), role="teller"
    )
    advance(flow, 3)  # handle transferMoney, feed the saga, handle the debit
    assert balance(flow, ALICE) == 0 and T1 in flow.store.load(Account, ALICE).debits

    closing = send(flow, CloseAccount(account_id=ALICE))

    assert closing.status == "processed"
    alice = flow.store.load(Account, ALICE)
    assert (alice.closed, alice.balance) == (True, 100)
    assert flow.store.load(Transfer, T1).status == "refunded"


# --- refusals ------------------------------------------------------------------------------
def test_a_transfer_id_used_twice_moves_money_once():
    flow = bank(alice=1_000)
    transfer(flow, ALICE, BOB, 100)

    again = transfer(flow, ALICE, BOB, 100)

    assert again.status == "failed"
    assert again.error is not None and again.error.code == "transfer_exists"
    assert (balance(flow, ALICE), balance(flow, BOB)) == (900, 100)
    assert [s.split(":")[0] for s in steps(flow)].count("debitAccountForTransfer") == 1


def test_a_transfer_to_the_same_account_is_refused_before_anything_moves():
    flow = bank(alice=1_000)

    sent = transfer(flow, ALICE, ALICE, 100)

    assert sent.status == "failed" and sent.error is not None and sent.error.code == "same_account"
    assert steps(flow) == []
    assert balance(flow, ALICE) == 1_000


INTERNAL_COMMANDS = [
    DebitAccountForTransfer(account_id=ALICE, transfer_id=T1, amount=1),
    CreditAccountForTransfer(account_id=BOB, transfer_id=T1, amount=1, currency="EUR"),
    RefundAccountForTransfer(account_id=ALICE, transfer_id=T1),
    MarkTransferCompleted(transfer_id=T1),
    MarkTransferRefunded(transfer_id=T1, reason="account_closed"),
    MarkTransferDeclined(transfer_id=T1, reason="insufficient_funds"),
]


@pytest.mark.parametrize(
    "role", ["admin", "banker", "teller", "developer", "tester", "system", "viewer", None]
)
@pytest.mark.parametrize("command", INTERNAL_COMMANDS, ids=lambda c: c.TYPE)
def test_no_role_may_send_a_transfer_step_itself(role, command):
    flow = bank(alice=1_000)
    before = len(flow.commands)

    with pytest.raises(Forbidden) as err:
        flow.send(command, role=role)

    assert err.value.code == "internal_command"
    assert len(flow.commands) == before
    assert balance(flow, ALICE) == 1_000


# --- the invariants under random traffic ---------------------------------------------------
ACCOUNTS = [ALICE, BOB, CAROL, NOBODY]
# Weighted towards the two EUR accounts, so that many transfers can complete.
account = st.sampled_from([ALICE, ALICE, ALICE, BOB, BOB, BOB, CAROL, NOBODY])
amount = st.integers(min_value=1, max_value=1_500)
transfer_op = st.tuples(
    st.just("transfer"),
    st.integers(min_value=1, max_value=15),  # transfer ids repeat now and then
    account,
    account,
    amount,
    st.sampled_from([None, None, None, "EUR", "USD"]),
)
OPERATIONS = {
    "deposit": st.tuples(st.just("deposit"), account, amount),
    "withdraw": st.tuples(st.just("withdraw"), account, amount),
    "transfer": transfer_op,
    # Let the flow take a few steps, so later commands land while transfers are in flight.
    "advance": st.tuples(st.just("advance"), st.integers(min_value=1, max_value=8)),
    "empty_and_close": st.tuples(st.just("empty_and_close"), account),
}
# Mostly transfers; closing is rare, or every later transfer would just be declined.
operation = st.sampled_from(
    ["transfer"] * 6 + ["deposit"] * 2 + ["withdraw"] * 2 + ["advance"] * 3 + ["empty_and_close"]
).flatmap(OPERATIONS.__getitem__)


def _apply(flow: InMemoryFlow, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "deposit":
        flow.send(DepositMoney(account_id=op[1], amount=op[2]), role="teller")
    elif kind == "withdraw":
        flow.send(WithdrawMoney(account_id=op[1], amount=op[2]), role="teller")
    elif kind == "empty_and_close":
        current = balance(flow, op[1])
        if current > 0:
            flow.send(WithdrawMoney(account_id=op[1], amount=current), role="teller")
        flow.send(CloseAccount(account_id=op[1]), role="banker")
    elif kind == "transfer":
        _, number, source, target, value, currency = op
        command = TransferMoney(
            transfer_id=uuid.UUID(int=number),
            from_account_id=source,
            to_account_id=target,
            amount=value,
            currency=currency,
        )
        flow.send(command, role="teller")
    else:
        advance(flow, op[1])


def _moved_by_customers(flow: InMemoryFlow) -> dict[str, int]:
    """Deposits minus withdrawals that actually happened, per currency."""
    totals: dict[str, int] = {}
    for sent in flow.commands.values():
        if sent.status != "processed" or not isinstance(sent.command, (DepositMoney, WithdrawMoney)):
            continue
        currency = flow.store.load(Account, sent.command.account_id).currency
        sign = 1 if isinstance(sent.command, DepositMoney) else -1
        totals[currency] = totals.get(currency, 0) + sign * sent.command.amount
    return totals


def _held(flow: InMemoryFlow) -> dict[str, int]:
    totals: dict[str, int] = {}
    for account_id in ACCOUNTS:
        state = flow.store.load(Account, account_id)
        if state.opened:
            totals[state.currency] = totals.get(state.currency, 0) + state.balance
    return totals


def _nonzero(totals: dict[str, int]) -> dict[str, int]:
    return {currency: amount for currency, amount in totals.items() if amount}


# Events after which a closed account may still change: only a refund brings money back.
_MOVES_MONEY = {
    "moneyDeposited",
    "moneyWithdrawn",
    "accountDebitedForTransfer",
    "accountCreditedForTransfer",
    "accountRefundedForTransfer",
}


@settings(max_examples=200, deadline=None)
@given(
    deposits=st.lists(st.integers(min_value=0, max_value=5_000), min_size=3, max_size=3),
    ops=st.lists(operation, min_size=15, max_size=60),
)
def test_random_traffic_never_creates_loses_or_strands_money(deposits, ops):
    flow = bank(alice=1_000 + deposits[0], bob=1_000 + deposits[1], carol=deposits[2])

    event(f"ops {len(ops) // 10 * 10}")
    event(f"transfers {sum(1 for o in ops if o[0] == 'transfer') // 5 * 5}")
    for op in ops:
        _apply(flow, op)
        assert all(balance(flow, a) >= 0 for a in ACCOUNTS)
    flow.run()

    # Money is never created or lost, in any currency, and nothing is left in flight.
    assert _nonzero(_held(flow)) == _nonzero(_moved_by_customers(flow))
    assert all(balance(flow, a) >= 0 for a in ACCOUNTS)
    # Every accepted transfer ended one of the three ways, and its saga instance finished.
    requested = [s for s in flow.commands.values() if isinstance(s.command, TransferMoney) and s.events]
    for sent in requested:
        transfer_id = sent.command.aggregate_id(sent.ctx)
        outcome = flow.store.load(Transfer, transfer_id).status
        assert outcome in {"completed", "refunded", "declined"}
        assert (TRANSFER_SAGA.name, str(transfer_id)) in flow.finished
        event(f"transfer {outcome}")
    # No step of any transfer failed: every decision was recorded as an event.
    assert all(s.status == "processed" for s in flow.issued_by(TRANSFER_SAGA.name))
    for account_id in ACCOUNTS:
        state = flow.store.load(Account, account_id)
        # Each debited transfer was either credited to its target or refunded to its source.
        for transfer_id in state.debits:
            settled = flow.store.load(Transfer, transfer_id)
            target = flow.store.load(Account, settled.to_account_id or NOBODY)
            assert (settled.status == "completed" and transfer_id in target.credits) or (
                settled.status == "refunded" and transfer_id in state.refunds
            )
        # Once closed, an account only ever gets refunds back.
        stream = [rec.type for rec in flow.store.read_stream("account", account_id)]
        if "accountClosed" in stream:
            later = set(stream[stream.index("accountClosed") + 1 :]) & _MOVES_MONEY
            assert later <= {"accountRefundedForTransfer"}
            if later:
                event("a refund reached a closed account")
