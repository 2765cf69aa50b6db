"""Decisions of the banking slice: (state, command, context) -> new events.

Public commands raise a DomainError when a rule says no: the caller sees the code and
nothing is recorded. The internal commands of a transfer never raise for a business
reason: a failed command is invisible to the saga (it consumes the event log), so the
transfer would hang with its money in flight. They record a "declined" event instead,
and they record nothing for a transfer leg they have already decided, so a redelivered
step cannot move money twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from commands_app.domain.errors import DomainError
from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent
from commands_app.domain.registry import Handler
from commands_app.slices.banking.aggregate import Account, Transfer, TransferStage
from commands_app.slices.banking.payloads import (
    MAX_BALANCE,
    AccountClosed,
    AccountCreditDeclined,
    AccountCreditedForTransfer,
    AccountDebitDeclined,
    AccountDebitedForTransfer,
    AccountOpened,
    AccountRefundedForTransfer,
    CloseAccount,
    CreditAccountForTransfer,
    DebitAccountForTransfer,
    DeclineReason,
    DepositMoney,
    MarkTransferCompleted,
    MarkTransferDeclined,
    MarkTransferRefunded,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    RefundAccountForTransfer,
    TransferCompleted,
    TransferDeclined,
    TransferMoney,
    TransferRefunded,
    TransferRequested,
    WithdrawMoney,
)


def _require_open(account: Account) -> None:
    if not account.opened:
        raise DomainError(f"Account {account.id} does not exist.", code="account_not_found")
    if account.closed:
        raise DomainError(f"Account {account.id} is closed.", code="account_closed")


# -- accounts ---------------------------------------------------------------------------------
def open_account(account: Account, cmd: OpenAccount, ctx: CommandContext) -> Sequence[DomainEvent]:
    if account.opened:
        raise DomainError(f"Account {account.id} already exists.", code="account_exists")
    return [AccountOpened(owner=cmd.owner, currency=cmd.currency)]


def deposit_money(account: Account, cmd: DepositMoney, ctx: CommandContext) -> Sequence[DomainEvent]:
    _require_open(account)
    balance = account.balance + cmd.amount
    if balance > MAX_BALANCE:
        raise DomainError(
            "The deposit would take the balance past the limit.",
            code="balance_limit_exceeded",
            details={"balance": account.balance, "amount": cmd.amount, "limit": MAX_BALANCE},
        )
    return [MoneyDeposited(amount=cmd.amount, currency=account.currency, balance_after=balance)]


def withdraw_money(account: Account, cmd: WithdrawMoney, ctx: CommandContext) -> Sequence[DomainEvent]:
    _require_open(account)
    if cmd.amount > account.balance:
        raise DomainError(
            f"Account {account.id} holds {account.balance}, less than {cmd.amount}.",
            code="insufficient_funds",
            details={"balance": account.balance, "amount": cmd.amount},
        )
    return [
        MoneyWithdrawn(
            amount=cmd.amount, currency=account.currency, balance_after=account.balance - cmd.amount
        )
    ]


def close_account(account: Account, cmd: CloseAccount, ctx: CommandContext) -> Sequence[DomainEvent]:
    _require_open(account)
    if account.balance != 0:
        raise DomainError(
            f"Account {account.id} still holds {account.balance}; only an empty account closes.",
            code="balance_not_zero",
            details={"balance": account.balance},
        )
    return [AccountClosed(currency=account.currency)]


# -- transfer legs on accounts (internal: never raise for a business reason) -----------------
def _debit_refusal(account: Account, cmd: DebitAccountForTransfer) -> DeclineReason | None:
    if not account.opened:
        return "account_not_found"
    if account.closed:
        return "account_closed"
    if cmd.currency is not None and cmd.currency != account.currency:
        return "currency_mismatch"
    if cmd.amount > account.balance:
        return "insufficient_funds"
    return None


def debit_account_for_transfer(
    account: Account, cmd: DebitAccountForTransfer, ctx: CommandContext
) -> Sequence[DomainEvent]:
    if cmd.transfer_id in account.debits or cmd.transfer_id in account.declined:
        return []  # this leg is decided already
    reason = _debit_refusal(account, cmd)
    if reason is not None:
        # A never-opened account's currency is "": say None rather than a currency nobody has.
        currency = cmd.currency or account.currency or None
        return [
            AccountDebitDeclined(
                transfer_id=cmd.transfer_id, amount=cmd.amount, currency=currency, reason=reason
            )
        ]
    return [
        AccountDebitedForTransfer(
            transfer_id=cmd.transfer_id,
            amount=cmd.amount,
            currency=account.currency,
            balance_after=account.balance - cmd.amount,
        )
    ]


def _credit_refusal(account: Account, cmd: CreditAccountForTransfer) -> DeclineReason | None:
    if not account.opened:
        return "account_not_found"
    if account.closed:
        return "account_closed"
    if cmd.currency != account.currency:
        return "currency_mismatch"
    if account.balance + cmd.amount > MAX_BALANCE:
        return "balance_limit_exceeded"
    return None


def credit_account_for_transfer(
    account: Account, cmd: CreditAccountForTransfer, ctx: CommandContext
) -> Sequence[DomainEvent]:
    if cmd.transfer_id in account.credits or cmd.transfer_id in account.declined:
        return []
    reason = _credit_refusal(account, cmd)
    if reason is not None:
        return [
            AccountCreditDeclined(
                transfer_id=cmd.transfer_id, amount=cmd.amount, currency=cmd.currency, reason=reason
            )
        ]
    return [
        AccountCreditedForTransfer(
            transfer_id=cmd.transfer_id,
            amount=cmd.amount,
            currency=account.currency,
            balance_after=account.balance + cmd.amount,
        )
    ]


def refund_account_for_transfer(
    account: Account, cmd: RefundAccountForTransfer, ctx: CommandContext
) -> Sequence[DomainEvent]:
    if cmd.transfer_id in account.refunds:
        return []
    amount = account.debits.get(cmd.transfer_id)
    if amount is None:
        # Only the saga sends refunds, and only after a debit: reaching this is a bug, and
        # giving back money that was never taken would create it.
        raise DomainError(
            f"Account {account.id} was never debited for transfer {cmd.transfer_id}.",
            code="nothing_to_refund",
            details={"transfer_id": str(cmd.transfer_id)},
        )
    # No open/closed or limit check: the money left this account and must come back to it,
    # even if the account was emptied and closed while the transfer was in flight.
    return [
        AccountRefundedForTransfer(
            transfer_id=cmd.transfer_id,
            amount=amount,
            currency=account.currency,
            balance_after=account.balance + amount,
        )
    ]


# -- transfers --------------------------------------------------------------------------------
def transfer_money(transfer: Transfer, cmd: TransferMoney, ctx: CommandContext) -> Sequence[DomainEvent]:
    if transfer.status != "new":
        raise DomainError(f"Transfer {transfer.id} already exists.", code="transfer_exists")
    if cmd.from_account_id == cmd.to_account_id:
        raise DomainError("A transfer needs two different accounts.", code="same_account")
    if cmd.amount <= 0:  # the payload schema refuses it too; the rule lives here
        raise DomainError("A transfer moves a positive amount.", code="invalid_amount")
    return [
        TransferRequested(
            from_account_id=cmd.from_account_id,
            to_account_id=cmd.to_account_id,
            amount=cmd.amount,
            currency=cmd.currency,
        )
    ]


def _settle(transfer: Transfer, outcome: TransferStage, event: DomainEvent) -> Sequence[DomainEvent]:
    if transfer.status == "new":
        raise DomainError(f"Transfer {transfer.id} does not exist.", code="transfer_not_found")
    if transfer.status == outcome:
        return []  # already settled this way: a redelivered step
    if transfer.is_settled:
        raise DomainError(
            f"Transfer {transfer.id} is already {transfer.status}.",
            code="transfer_already_settled",
            details={"status": transfer.status, "requested": outcome},
        )
    return [event]


def mark_transfer_completed(
    transfer: Transfer, cmd: MarkTransferCompleted, ctx: CommandContext
) -> Sequence[DomainEvent]:
    return _settle(transfer, "completed", TransferCompleted())


def mark_transfer_refunded(
    transfer: Transfer, cmd: MarkTransferRefunded, ctx: CommandContext
) -> Sequence[DomainEvent]:
    return _settle(transfer, "refunded", TransferRefunded(reason=cmd.reason))


def mark_transfer_declined(
    transfer: Transfer, cmd: MarkTransferDeclined, ctx: CommandContext
) -> Sequence[DomainEvent]:
    return _settle(transfer, "declined", TransferDeclined(reason=cmd.reason))


COMMAND_HANDLERS: dict[type[DomainCommand], Handler] = {
    OpenAccount: open_account,
    DepositMoney: deposit_money,
    WithdrawMoney: withdraw_money,
    CloseAccount: close_account,
    TransferMoney: transfer_money,
    DebitAccountForTransfer: debit_account_for_transfer,
    CreditAccountForTransfer: credit_account_for_transfer,
    RefundAccountForTransfer: refund_account_for_transfer,
    MarkTransferCompleted: mark_transfer_completed,
    MarkTransferRefunded: mark_transfer_refunded,
    MarkTransferDeclined: mark_transfer_declined,
}
