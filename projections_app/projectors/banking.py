"""The banking slice's projectors: balances, statements, transfers and per-currency totals.

Handlers change rows through the batch (see projectors.base.Batch). Each is idempotent on
its own too, like the system projectors: rows of one stream guard on the stream version,
rows fed by several streams on the log position, and statement lines are keyed by the
event id, so a replayed event rewrites the same line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from django.db.models import Model

from commands_app.domain.messages import Recorded
from commands_app.slices.banking.payloads import (
    AccountClosed,
    AccountCreditDeclined,
    AccountCreditedForTransfer,
    AccountDebitDeclined,
    AccountDebitedForTransfer,
    AccountOpened,
    AccountRefundedForTransfer,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferCompleted,
    TransferDeclined,
    TransferRefunded,
    TransferRequested,
)
from projections_app.models.banking import AccountBalance, BankTotals, StatementLine, TransferStatus
from projections_app.projectors.base import Batch, Projection, ReadModel

# Account events that set a new balance (each carries `balance_after`).
BalanceChange = (
    MoneyDeposited
    | MoneyWithdrawn
    | AccountDebitedForTransfer
    | AccountCreditedForTransfer
    | AccountRefundedForTransfer
)
Moved = TypeVar("Moved", bound=BalanceChange)


# -- account_balances: one row per opened account ---------------------------------------------
def _balance_row(rec: Recorded[Any], batch: Batch) -> AccountBalance | None:
    """The account's row, or None when this event was applied already.

    Money only moves on opened accounts, so the row exists for every event handled below
    (a declined transfer leg on an unknown account is not handled here).
    """
    row = batch.get(AccountBalance, rec.stream_id)
    if row is None or rec.version <= row.last_event_version:
        return None
    return row


def _touch_balance(row: AccountBalance, rec: Recorded[Any], batch: Batch) -> None:
    row.last_event_version = rec.version
    row.last_position = rec.position
    row.updated_at = rec.recorded_at
    batch.put(row)


def balance_account_opened(rec: Recorded[AccountOpened], batch: Batch) -> None:
    row = batch.get(AccountBalance, rec.stream_id)
    if row is not None and rec.version <= row.last_event_version:
        return
    row = AccountBalance(
        account_id=rec.stream_id,
        owner=rec.event.owner,
        currency=rec.event.currency,
        balance=0,
        status=AccountBalance.Status.OPEN,
        opened_at=rec.recorded_at,
    )
    _touch_balance(row, rec, batch)


def balance_changed(rec: Recorded[BalanceChange], batch: Batch) -> None:
    row = _balance_row(rec, batch)
    if row is None:
        return
    row.balance = rec.event.balance_after
    _touch_balance(row, rec, batch)


def balance_account_closed(rec: Recorded[AccountClosed], batch: Batch) -> None:
    row = _balance_row(rec, batch)
    if row is None:
        return
    row.status = AccountBalance.Status.CLOSED
    row.closed_at = rec.recorded_at
    _touch_balance(row, rec, batch)


def balance_keys(records: Sequence[Recorded[Any]]) -> Mapping[type[Model], Iterable[Any]]:
    return {AccountBalance: {rec.stream_id for rec in records}}


# -- account_statement: one line per money movement -------------------------------------------
def _line(rec: Recorded[Moved], kind: str, sign: int, transfer_id: UUID | None, batch: Batch) -> None:
    # Keyed by the event id: applying an event twice upserts the same line.
    batch.put(
        StatementLine(
            event_id=rec.id,
            account_id=rec.stream_id,
            kind=kind,
            amount=sign * rec.event.amount,
            currency=rec.event.currency,
            balance_after=rec.event.balance_after,
            transfer_id=transfer_id,
            position=rec.position,
            recorded_at=rec.recorded_at,
        )
    )


def statement_deposit(rec: Recorded[MoneyDeposited], batch: Batch) -> None:
    _line(rec, StatementLine.Kind.DEPOSIT, +1, None, batch)


def statement_withdrawal(rec: Recorded[MoneyWithdrawn], batch: Batch) -> None:
    _line(rec, StatementLine.Kind.WITHDRAWAL, -1, None, batch)


def statement_transfer_out(rec: Recorded[AccountDebitedForTransfer], batch: Batch) -> None:
    _line(rec, StatementLine.Kind.TRANSFER_OUT, -1, rec.event.transfer_id, batch)


def statement_transfer_in(rec: Recorded[AccountCreditedForTransfer], batch: Batch) -> None:
    _line(rec, StatementLine.Kind.TRANSFER_IN, +1, rec.event.transfer_id, batch)


def statement_refund(rec: Recorded[AccountRefundedForTransfer], batch: Batch) -> None:
    _line(rec, StatementLine.Kind.REFUND, +1, rec.event.transfer_id, batch)


# -- transfers: where each transfer stands ----------------------------------------------------
def _transfer_id(rec: Recorded[Any]) -> UUID:
    transfer_id = getattr(rec.event, "transfer_id", None)
    return transfer_id if isinstance(transfer_id, UUID) else rec.stream_id


def _transfer_row(rec: Recorded[Any], batch: Batch) -> TransferStatus | None:
    """The transfer's row, or None when this event was applied already.

    A transfer's first event (transferRequested) precedes its account legs in the log,
    because the saga issues each leg only after the previous event committed.
    """
    row = batch.get(TransferStatus, _transfer_id(rec))
    if row is None or rec.position <= row.last_position:
        return None
    return row


def _touch_transfer(row: TransferStatus, rec: Recorded[Any], batch: Batch) -> None:
    row.last_position = rec.position
    row.updated_at = rec.recorded_at
    batch.put(row)


def transfer_requested(rec: Recorded[TransferRequested], batch: Batch) -> None:
    if batch.get(TransferStatus, rec.stream_id) is not None:
        return
    event = rec.event
    row = TransferStatus(
        transfer_id=rec.stream_id,
        from_account_id=event.from_account_id,
        to_account_id=event.to_account_id,
        amount=event.amount,
        currency=event.currency,  # None until the request or a leg names one
        status=TransferStatus.Status.REQUESTED,
        requested_at=rec.recorded_at,
    )
    _touch_transfer(row, rec, batch)


def transfer_debited(rec: Recorded[AccountDebitedForTransfer], batch: Batch) -> None:
    row = _transfer_row(rec, batch)
    if row is None:
        return
    row.status = TransferStatus.Status.DEBITED
    row.currency = rec.event.currency
    _touch_transfer(row, rec, batch)


def transfer_leg_declined(rec: Recorded[AccountDebitDeclined | AccountCreditDeclined], batch: Batch) -> None:
    # The status changes with the transfer's own outcome event; the reason is known now,
    # and so is the currency when the request named none (the source account's).
    row = _transfer_row(rec, batch)
    if row is None:
        return
    row.reason = rec.event.reason
    row.currency = row.currency or rec.event.currency
    _touch_transfer(row, rec, batch)


def _settled(rec: Recorded[Any], status: str, reason: str, batch: Batch) -> None:
    row = _transfer_row(rec, batch)
    if row is None:
        return
    row.status = status
    row.reason = reason
    row.settled_at = rec.recorded_at
    _touch_transfer(row, rec, batch)


def transfer_completed(rec: Recorded[TransferCompleted], batch: Batch) -> None:
    _settled(rec, TransferStatus.Status.COMPLETED, "", batch)


def transfer_refunded(rec: Recorded[TransferRefunded], batch: Batch) -> None:
    _settled(rec, TransferStatus.Status.REFUNDED, rec.event.reason, batch)


def transfer_declined(rec: Recorded[TransferDeclined], batch: Batch) -> None:
    _settled(rec, TransferStatus.Status.DECLINED, rec.event.reason, batch)


def transfer_keys(records: Sequence[Recorded[Any]]) -> Mapping[type[Model], Iterable[Any]]:
    return {TransferStatus: {_transfer_id(rec) for rec in records}}


# -- bank_totals: per currency ----------------------------------------------------------------
def _totals_row(rec: Recorded[Any], batch: Batch) -> BankTotals | None:
    currency = rec.event.currency
    row = batch.get(BankTotals, currency) or BankTotals(currency=currency, updated_at=rec.recorded_at)
    return None if rec.position <= row.last_position else row


def _add(
    rec: Recorded[Any], batch: Batch, *, balance: int = 0, accounts: int = 0, in_flight: int = 0
) -> None:
    row = _totals_row(rec, batch)
    if row is None:
        return
    row.total_balance += balance
    row.accounts_open += accounts
    row.in_flight += in_flight
    row.last_position = rec.position
    row.updated_at = rec.recorded_at
    batch.put(row)


def totals_account_opened(rec: Recorded[AccountOpened], batch: Batch) -> None:
    _add(rec, batch, accounts=+1)


def totals_account_closed(rec: Recorded[AccountClosed], batch: Batch) -> None:
    _add(rec, batch, accounts=-1)


def totals_deposit(rec: Recorded[MoneyDeposited], batch: Batch) -> None:
    _add(rec, batch, balance=rec.event.amount)


def totals_withdrawal(rec: Recorded[MoneyWithdrawn], batch: Batch) -> None:
    _add(rec, batch, balance=-rec.event.amount)


def totals_debited(rec: Recorded[AccountDebitedForTransfer], batch: Batch) -> None:
    _add(rec, batch, balance=-rec.event.amount, in_flight=rec.event.amount)


def totals_credited(rec: Recorded[AccountCreditedForTransfer], batch: Batch) -> None:
    _add(rec, batch, balance=rec.event.amount, in_flight=-rec.event.amount)


def totals_refunded(rec: Recorded[AccountRefundedForTransfer], batch: Batch) -> None:
    _add(rec, batch, balance=rec.event.amount, in_flight=-rec.event.amount)


def totals_keys(records: Sequence[Recorded[Any]]) -> Mapping[type[Model], Iterable[Any]]:
    return {BankTotals: {rec.event.currency for rec in records}}


PROJECTIONS = (
    Projection(
        name="account_balances",
        version=1,
        read_models=(AccountBalance,),
        handlers={
            AccountOpened: balance_account_opened,
            MoneyDeposited: balance_changed,
            MoneyWithdrawn: balance_changed,
            AccountDebitedForTransfer: balance_changed,
            AccountCreditedForTransfer: balance_changed,
            AccountRefundedForTransfer: balance_changed,
            AccountClosed: balance_account_closed,
        },
        keys=balance_keys,
    ),
    Projection(
        name="account_statement",
        version=1,
        read_models=(StatementLine,),
        handlers={
            MoneyDeposited: statement_deposit,
            MoneyWithdrawn: statement_withdrawal,
            AccountDebitedForTransfer: statement_transfer_out,
            AccountCreditedForTransfer: statement_transfer_in,
            AccountRefundedForTransfer: statement_refund,
        },
    ),
    Projection(
        name="transfers",
        version=1,
        read_models=(TransferStatus,),
        handlers={
            TransferRequested: transfer_requested,
            AccountDebitedForTransfer: transfer_debited,
            AccountDebitDeclined: transfer_leg_declined,
            AccountCreditDeclined: transfer_leg_declined,
            TransferCompleted: transfer_completed,
            TransferRefunded: transfer_refunded,
            TransferDeclined: transfer_declined,
        },
        keys=transfer_keys,
    ),
    Projection(
        name="bank_totals",
        version=1,
        read_models=(BankTotals,),
        handlers={
            AccountOpened: totals_account_opened,
            AccountClosed: totals_account_closed,
            MoneyDeposited: totals_deposit,
            MoneyWithdrawn: totals_withdrawal,
            AccountDebitedForTransfer: totals_debited,
            AccountCreditedForTransfer: totals_credited,
            AccountRefundedForTransfer: totals_refunded,
        },
        keys=totals_keys,
    ),
)

READ_MODELS = (
    ReadModel(
        name="account_balances",
        model=AccountBalance,
        projection="account_balances",
        filter_fields=("owner", "currency", "status"),
        ordering=("account_id",),
        money_fields=("balance",),
    ),
    ReadModel(
        name="account_statement",
        model=StatementLine,
        projection="account_statement",
        filter_fields=("account_id", "transfer_id", "kind"),
        ordering=("position",),
        money_fields=("amount", "balance_after"),
    ),
    ReadModel(
        name="transfers",
        model=TransferStatus,
        projection="transfers",
        filter_fields=("status", "from_account_id", "to_account_id"),
        ordering=("transfer_id",),
        money_fields=("amount",),
    ),
    ReadModel(
        name="bank_totals",
        model=BankTotals,
        projection="bank_totals",
        ordering=("currency",),
        money_fields=("total_balance", "in_flight"),
    ),
)
