"""Given events, when a command, then events: the banking slice on the in-memory store."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from commands_app.domain.errors import DomainError, InvalidPayload
from commands_app.domain.messages import DomainCommand
from commands_app.domain.registry import Registry
from commands_app.domain.store import InMemoryEventStore, execute
from commands_app.slices import banking, system
from commands_app.slices.banking.aggregate import Account, Transfer
from commands_app.slices.banking.payloads import (
    MAX_AMOUNT,
    MAX_BALANCE,
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
from tests.unit.conftest import make_ctx

ALICE = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
BOB = uuid.UUID("b0000000-0000-4000-8000-00000000000b")
NOBODY = uuid.UUID("d0000000-0000-4000-8000-00000000000d")
TRANSFER = uuid.UUID("70000000-0000-4000-8000-000000000007")


@pytest.fixture
def registry() -> Registry:
    return Registry([system.SLICE, banking.SLICE])


@pytest.fixture
def store(registry: Registry) -> InMemoryEventStore:
    return InMemoryEventStore(registry)


@pytest.fixture
def run(store, registry):
    """`run(command)` executes one command as a banker and returns the recorded events."""

    def _run(command: DomainCommand) -> list[Any]:
        return execute(store, registry, command, make_ctx(role="banker"))

    return _run


def given(run, *commands: DomainCommand) -> None:
    for command in commands:
        run(command)


def types(recorded: list[Any]) -> list[str]:
    return [rec.type for rec in recorded]


def refused(run, command: DomainCommand) -> DomainError:
    with pytest.raises(DomainError) as err:
        run(command)
    return err.value


# --- accounts ------------------------------------------------------------------------------
def test_it_opens_an_account_with_a_zero_balance(run, store):
    (rec,) = run(OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"))

    assert rec.type == "accountOpened"
    assert (rec.event.owner, rec.event.currency) == ("Alice", "EUR")
    account = store.load(Account, ALICE)
    assert (account.opened, account.closed, account.balance) == (True, False, 0)


def test_it_refuses_to_open_an_account_twice_even_after_closing_it(run, store):
    given(run, OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"))
    assert refused(run, OpenAccount(account_id=ALICE, owner="Eve", currency="USD")).code == "account_exists"

    run(CloseAccount(account_id=ALICE))
    assert refused(run, OpenAccount(account_id=ALICE, owner="Eve", currency="USD")).code == "account_exists"
    assert store.load(Account, ALICE).owner == "Alice"


def test_deposits_and_withdrawals_move_minor_units_and_state_the_balance_after(run, store):
    given(run, OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"))

    (deposited,) = run(DepositMoney(account_id=ALICE, amount=1_050))
    (withdrawn,) = run(WithdrawMoney(account_id=ALICE, amount=1_049))

    assert (deposited.type, deposited.event.amount, deposited.event.balance_after) == (
        "moneyDeposited",
        1_050,
        1_050,
    )
    assert (withdrawn.type, withdrawn.event.amount, withdrawn.event.balance_after) == (
        "moneyWithdrawn",
        1_049,
        1,
    )
    assert deposited.event.currency == withdrawn.event.currency == "EUR"
    assert store.load(Account, ALICE).balance == 1


def test_a_withdrawal_never_takes_the_balance_below_zero(run, store):
    given(
        run,
        OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"),
        DepositMoney(account_id=ALICE, amount=500),
    )

    error = refused(run, WithdrawMoney(account_id=ALICE, amount=501))

    assert error.code == "insufficient_funds"
    assert error.details == {"balance": 500, "amount": 501}
    assert types(store.read_stream("account", ALICE)) == ["accountOpened", "moneyDeposited"]
    assert types(run(WithdrawMoney(account_id=ALICE, amount=500))) == ["moneyWithdrawn"]
    assert store.load(Account, ALICE).balance == 0


@pytest.mark.parametrize("command", [DepositMoney, WithdrawMoney])
def test_money_does_not_move_on_an_account_that_was_never_opened(run, store, command):
    assert refused(run, command(account_id=NOBODY, amount=1)).code == "account_not_found"
    assert store.read_stream("account", NOBODY) == []


@pytest.mark.parametrize("command", [DepositMoney, WithdrawMoney])
def test_money_does_not_move_on_a_closed_account(run, command):
    given(run, OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"), CloseAccount(account_id=ALICE))

    assert refused(run, command(account_id=ALICE, amount=1)).code == "account_closed"


def test_a_deposit_past_the_balance_limit_is_refused(run, store):
    given(run, OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"))
    for _ in range(MAX_BALANCE // MAX_AMOUNT):
        run(DepositMoney(account_id=ALICE, amount=MAX_AMOUNT))

    assert refused(run, DepositMoney(account_id=ALICE, amount=1)).code == "balance_limit_exceeded"
    assert store.load(Account, ALICE).balance == MAX_BALANCE


def test_only_an_empty_account_closes(run, store):
    given(
        run,
        OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"),
        DepositMoney(account_id=ALICE, amount=1),
    )

    error = refused(run, CloseAccount(account_id=ALICE))
    assert (error.code, error.details) == ("balance_not_zero", {"balance": 1})

    run(WithdrawMoney(account_id=ALICE, amount=1))
    assert types(run(CloseAccount(account_id=ALICE))) == ["accountClosed"]
    assert store.load(Account, ALICE).closed
    assert refused(run, CloseAccount(account_id=ALICE)).code == "account_closed"
    assert refused(run, CloseAccount(account_id=NOBODY)).code == "account_not_found"


# --- payloads ------------------------------------------------------------------------------
@pytest.mark.parametrize("amount", [0, -1, 1.0, 2.5, "100", True, None, MAX_AMOUNT + 1])
@pytest.mark.parametrize("type_name", ["depositMoney", "withdrawMoney"])
def test_amounts_are_positive_integers_of_minor_units(registry, type_name, amount):
    with pytest.raises(InvalidPayload) as err:
        registry.parse_command(type_name, {"accountId": str(ALICE), "amount": amount})
    assert "amount" in err.value.details["fields"]


def test_the_largest_amount_is_accepted(registry):
    command = registry.parse_command("depositMoney", {"accountId": str(ALICE), "amount": MAX_AMOUNT})
    assert command == DepositMoney(account_id=ALICE, amount=MAX_AMOUNT)


@pytest.mark.parametrize("currency", ["eur", "EURO", "EU", "E1R", "", 978])
def test_a_currency_is_an_upper_case_iso_code(registry, currency):
    with pytest.raises(InvalidPayload) as err:
        registry.parse_command("openAccount", {"accountId": str(ALICE), "owner": "A", "currency": currency})
    assert "currency" in err.value.details["fields"]


def test_a_transfer_payload_refuses_a_zero_amount_and_unknown_fields(registry):
    base = {"transferId": str(TRANSFER), "fromAccountId": str(ALICE), "toAccountId": str(BOB)}
    with pytest.raises(InvalidPayload):
        registry.parse_command("transferMoney", {**base, "amount": 0})
    with pytest.raises(InvalidPayload):
        registry.parse_command("transferMoney", {**base, "amount": 1, "fee": 1})


# --- transfers -----------------------------------------------------------------------------
def test_a_transfer_is_requested_on_its_own_stream(run, store):
    (rec,) = run(TransferMoney(transfer_id=TRANSFER, from_account_id=ALICE, to_account_id=BOB, amount=250))

    assert rec.type == "transferRequested"
    assert (rec.stream_type, rec.stream_id) == ("transfer", TRANSFER)
    assert (rec.event.from_account_id, rec.event.to_account_id, rec.event.amount) == (ALICE, BOB, 250)
    transfer = store.load(Transfer, TRANSFER)
    assert (transfer.status, transfer.amount) == ("requested", 250)


def test_a_transfer_id_is_used_once(run):
    given(run, TransferMoney(transfer_id=TRANSFER, from_account_id=ALICE, to_account_id=BOB, amount=1))

    again = TransferMoney(transfer_id=TRANSFER, from_account_id=ALICE, to_account_id=BOB, amount=1)
    assert refused(run, again).code == "transfer_exists"


def test_a_transfer_needs_two_different_accounts(run, store):
    same = TransferMoney(transfer_id=TRANSFER, from_account_id=ALICE, to_account_id=ALICE, amount=1)

    assert refused(run, same).code == "same_account"
    assert store.read_stream("transfer", TRANSFER) == []


def test_a_transfer_of_nothing_is_refused_even_past_the_payload_schema(run):
    # model_construct skips validation: the handler's own rule still holds.
    nothing = TransferMoney.model_construct(
        transfer_id=TRANSFER, from_account_id=ALICE, to_account_id=BOB, amount=0
    )

    assert refused(run, nothing).code == "invalid_amount"


# --- transfer legs on accounts -------------------------------------------------------------
def debit(
    amount: int = 100, transfer_id: uuid.UUID = TRANSFER, currency: str | None = None
) -> DebitAccountForTransfer:
    return DebitAccountForTransfer(
        account_id=ALICE, transfer_id=transfer_id, amount=amount, currency=currency
    )


def credit(
    amount: int = 100, transfer_id: uuid.UUID = TRANSFER, currency: str = "EUR", account: uuid.UUID = BOB
) -> CreditAccountForTransfer:
    return CreditAccountForTransfer(
        account_id=account, transfer_id=transfer_id, amount=amount, currency=currency
    )


def alice_with(run, balance: int, currency: str = "EUR") -> None:
    given(run, OpenAccount(account_id=ALICE, owner="Alice", currency=currency))
    if balance:
        run(DepositMoney(account_id=ALICE, amount=balance))


def test_a_debit_takes_the_amount_from_the_source(run, store):
    alice_with(run, 300)

    (rec,) = run(debit(100))

    assert rec.type == "accountDebitedForTransfer"
    assert (rec.event.transfer_id, rec.event.amount, rec.event.currency, rec.event.balance_after) == (
        TRANSFER,
        100,
        "EUR",
        200,
    )
    assert store.load(Account, ALICE).debits == {TRANSFER: 100}


@pytest.mark.parametrize(
    ("setup", "command", "reason", "currency"),
    [
        # The transfer's currency: the one it named, else the source account's; else none
        # (a never-opened account's state says "", which is no currency).
        ("never opened", debit(), "account_not_found", None),
        ("never opened", debit(currency="USD"), "account_not_found", "USD"),
        ("closed", debit(), "account_closed", "EUR"),
        ("holds 99", debit(100), "insufficient_funds", "EUR"),
        ("holds 500 EUR", debit(100, currency="USD"), "currency_mismatch", "USD"),
    ],
)
def test_a_debit_that_cannot_happen_is_recorded_as_declined_not_raised(
    run, store, setup, command, reason, currency
):
    if setup == "closed":
        given(
            run, OpenAccount(account_id=ALICE, owner="Alice", currency="EUR"), CloseAccount(account_id=ALICE)
        )
    elif setup == "holds 99":
        alice_with(run, 99)
    elif setup == "holds 500 EUR":
        alice_with(run, 500)
    balance = store.load(Account, ALICE).balance

    (rec,) = run(command)

    assert rec.type == "accountDebitDeclined"
    assert (rec.event.transfer_id, rec.event.amount, rec.event.reason) == (TRANSFER, command.amount, reason)
    assert rec.event.currency == currency
    assert store.load(Account, ALICE).balance == balance


def test_a_decline_stored_before_declines_named_a_currency_reads_as_naming_none(registry):
    v1 = {"transferId": str(TRANSFER), "amount": 100, "reason": "insufficient_funds"}

    event = registry.parse_event("accountDebitDeclined", 1, v1)

    assert (event.currency, event.reason, event.amount) == (None, "insufficient_funds", 100)
    assert registry.problems() == []  # the chain v1 -> v2 is complete


def test_a_debit_in_the_accounts_own_currency_is_taken(run, store):
    alice_with(run, 500, currency="USD")

    assert types(run(debit(100, currency="USD"))) == ["accountDebitedForTransfer"]


def test_a_second_debit_for_the_same_transfer_moves_nothing(run, store):
    alice_with(run, 300)
    run(debit(100))

    assert run(debit(100)) == []
    assert store.load(Account, ALICE).balance == 200


def test_a_debit_declined_once_stays_declined(run, store):
    alice_with(run, 50)
    assert types(run(debit(100))) == ["accountDebitDeclined"]
    run(DepositMoney(account_id=ALICE, amount=1_000))

    assert run(debit(100)) == []
    assert store.load(Account, ALICE).balance == 1_050


def test_a_credit_pays_the_amount_into_the_target(run, store):
    given(
        run, OpenAccount(account_id=BOB, owner="Bob", currency="EUR"), DepositMoney(account_id=BOB, amount=7)
    )

    (rec,) = run(credit(100))

    assert rec.type == "accountCreditedForTransfer"
    assert (rec.event.amount, rec.event.currency, rec.event.balance_after) == (100, "EUR", 107)
    assert run(credit(100)) == []  # the same transfer again: nothing
    assert store.load(Account, BOB).balance == 107


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("never opened", "account_not_found"),
        ("closed", "account_closed"),
        ("keeps USD", "currency_mismatch"),
        ("full", "balance_limit_exceeded"),
    ],
)
def test_a_credit_that_cannot_happen_is_recorded_as_declined_not_raised(run, store, setup, reason):
    if setup != "never opened":
        run(OpenAccount(account_id=BOB, owner="Bob", currency="USD" if setup == "keeps USD" else "EUR"))
    if setup == "closed":
        run(CloseAccount(account_id=BOB))
    if setup == "full":
        for _ in range(MAX_BALANCE // MAX_AMOUNT):
            run(DepositMoney(account_id=BOB, amount=MAX_AMOUNT))

    (rec,) = run(credit(100, currency="EUR"))

    assert rec.type == "accountCreditDeclined"
    assert (rec.event.transfer_id, rec.event.amount, rec.event.reason) == (TRANSFER, 100, reason)
    assert run(credit(100, currency="EUR")) == []  # decided once


def test_a_refund_gives_back_exactly_what_was_debited_once(run, store):
    alice_with(run, 300)
    run(debit(120))

    (rec,) = run(RefundAccountForTransfer(account_id=ALICE, transfer_id=TRANSFER))

    assert rec.type == "accountRefundedForTransfer"
    assert (rec.event.amount, rec.event.currency, rec.event.balance_after) == (120, "EUR", 300)
    assert run(RefundAccountForTransfer(account_id=ALICE, transfer_id=TRANSFER)) == []
    assert store.load(Account, ALICE).balance == 300


def test_a_refund_reaches_an_account_closed_while_its_money_was_in_flight(run, store):
    alice_with(run, 100)
    given(run, debit(100), CloseAccount(account_id=ALICE))

    (rec,) = run(RefundAccountForTransfer(account_id=ALICE, transfer_id=TRANSFER))

    assert rec.event.balance_after == 100
    account = store.load(Account, ALICE)
    assert (account.closed, account.balance) == (True, 100)


def test_nothing_is_refunded_that_was_never_debited(run, store):
    alice_with(run, 100)

    error = refused(run, RefundAccountForTransfer(account_id=ALICE, transfer_id=TRANSFER))

    assert error.code == "nothing_to_refund"
    assert store.load(Account, ALICE).balance == 100


# --- settling transfers --------------------------------------------------------------------
SETTLE = {
    "completed": (MarkTransferCompleted(transfer_id=TRANSFER), "transferCompleted"),
    "refunded": (MarkTransferRefunded(transfer_id=TRANSFER, reason="account_closed"), "transferRefunded"),
    "declined": (MarkTransferDeclined(transfer_id=TRANSFER, reason="insufficient_funds"), "transferDeclined"),
}


@pytest.mark.parametrize("outcome", list(SETTLE))
def test_a_requested_transfer_settles_once_and_only_one_way(run, store, outcome):
    given(run, TransferMoney(transfer_id=TRANSFER, from_account_id=ALICE, to_account_id=BOB, amount=1))
    command, event_type = SETTLE[outcome]

    assert types(run(command)) == [event_type]
    assert run(command) == []  # the same step again
    for other, (other_command, _) in SETTLE.items():
        if other != outcome:
            error = refused(run, other_command)
            assert (error.code, error.details["status"]) == ("transfer_already_settled", outcome)
    transfer = store.load(Transfer, TRANSFER)
    assert transfer.status == outcome
    assert transfer.reason == getattr(command, "reason", None)


@pytest.mark.parametrize("outcome", list(SETTLE))
def test_an_unknown_transfer_cannot_be_settled(run, outcome):
    assert refused(run, SETTLE[outcome][0]).code == "transfer_not_found"
