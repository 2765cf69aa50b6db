"""Wire contracts of the banking slice: accounts, and transfers between them.

Money is an `int` of minor units (cents) with an ISO 4217 currency code beside it, never a
float. Amounts are strict integers: `100.0`, `"100"` and `true` are refused, so nothing
is ever rounded on the way in. Every event that moves money names its currency and the
balance it left, so a projection never has to look anything up to place it.

DomainEvent fields are plain types on purpose: the commands validated the values once, and a
stored event must always parse again (a refund, which always succeeds, may even take a
balance past MAX_BALANCE).

Account streams hold the account's own history, the transfer legs it took part in
included (debited, credited, refunded, declined); transfer streams hold the transfer's
request and its outcome. The transfer saga (sagas.py) drives one into the other through
the internal commands below.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent

# One movement: at most 10^12 minor units (ten billion in a two-decimal currency).
MAX_AMOUNT = 10**12
# One balance: far below what a PostgreSQL bigint holds, so sums of many stay exact too.
MAX_BALANCE = 10**15

Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT, description="Minor units (e.g. cents).")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR.")]

# Why a transfer leg was declined (machine-readable, shown on the transfer).
DeclineReason = Literal[
    "account_not_found",
    "account_closed",
    "insufficient_funds",
    "currency_mismatch",
    "balance_limit_exceeded",
]


class AccountCommand(DomainCommand):
    AGGREGATE_TYPE: ClassVar[str] = "account"

    account_id: UUID

    def aggregate_id(self, ctx: CommandContext) -> UUID:
        return self.account_id


class TransferCommand(DomainCommand):
    AGGREGATE_TYPE: ClassVar[str] = "transfer"

    transfer_id: UUID

    def aggregate_id(self, ctx: CommandContext) -> UUID:
        return self.transfer_id


# -- public commands --------------------------------------------------------------------------
class OpenAccount(AccountCommand):
    """Open an account for `owner` in `currency`, with a zero balance."""

    TYPE: ClassVar[str] = "openAccount"
    owner: str = Field(min_length=1, max_length=200)
    currency: Currency


class DepositMoney(AccountCommand):
    """Pay `amount` (minor units) into an open account."""

    TYPE: ClassVar[str] = "depositMoney"
    amount: Amount


class WithdrawMoney(AccountCommand):
    """Pay `amount` out of an open account; fails with `insufficient_funds` below zero."""

    TYPE: ClassVar[str] = "withdrawMoney"
    amount: Amount


class CloseAccount(AccountCommand):
    """Close an open account whose balance is zero (`balance_not_zero` otherwise)."""

    TYPE: ClassVar[str] = "closeAccount"


class TransferMoney(TransferCommand):
    """Move `amount` from one account to another. Accepted at once (transferRequested); the
    transfer saga then debits, credits and settles it as completed, refunded or declined.
    With `currency`, the source account must hold that currency or the transfer is declined."""

    TYPE: ClassVar[str] = "transferMoney"
    from_account_id: UUID
    to_account_id: UUID
    amount: Amount
    currency: Currency | None = None


# -- internal commands: steps of the transfer saga, no role may send them --------------------
class DebitAccountForTransfer(AccountCommand):
    """Take a transfer's amount from its source account, or record why not."""

    TYPE: ClassVar[str] = "debitAccountForTransfer"
    INTERNAL: ClassVar[bool] = True
    transfer_id: UUID
    amount: Amount
    currency: Currency | None = None


class CreditAccountForTransfer(AccountCommand):
    """Pay a debited transfer's amount into its target account, or record why not."""

    TYPE: ClassVar[str] = "creditAccountForTransfer"
    INTERNAL: ClassVar[bool] = True
    transfer_id: UUID
    amount: Amount
    currency: Currency


class RefundAccountForTransfer(AccountCommand):
    """Give a transfer's debited amount back to its source account. Always succeeds."""

    TYPE: ClassVar[str] = "refundAccountForTransfer"
    INTERNAL: ClassVar[bool] = True
    transfer_id: UUID


class MarkTransferCompleted(TransferCommand):
    """The target was credited: the transfer is done."""

    TYPE: ClassVar[str] = "markTransferCompleted"
    INTERNAL: ClassVar[bool] = True


class MarkTransferRefunded(TransferCommand):
    """The credit was declined and the source refunded."""

    TYPE: ClassVar[str] = "markTransferRefunded"
    INTERNAL: ClassVar[bool] = True
    reason: DeclineReason


class MarkTransferDeclined(TransferCommand):
    """The debit was declined: no money moved."""

    TYPE: ClassVar[str] = "markTransferDeclined"
    INTERNAL: ClassVar[bool] = True
    reason: DeclineReason


# -- account events ---------------------------------------------------------------------------
class AccountOpened(DomainEvent):
    TYPE: ClassVar[str] = "accountOpened"
    owner: str
    currency: str


class MoneyDeposited(DomainEvent):
    TYPE: ClassVar[str] = "moneyDeposited"
    amount: int
    currency: str
    balance_after: int


class MoneyWithdrawn(DomainEvent):
    TYPE: ClassVar[str] = "moneyWithdrawn"
    amount: int
    currency: str
    balance_after: int


class AccountClosed(DomainEvent):
    TYPE: ClassVar[str] = "accountClosed"
    currency: str


class AccountDebitedForTransfer(DomainEvent):
    """The source account of a transfer gave the amount; it is in flight until credited or refunded."""

    TYPE: ClassVar[str] = "accountDebitedForTransfer"
    transfer_id: UUID
    amount: int
    currency: str
    balance_after: int


class AccountDebitDeclined(DomainEvent):
    """The source account could not give the amount; nothing moved. Recorded (not raised) so
    the transfer saga sees it and declines the transfer instead of waiting forever.

    v2 added `currency`: the one the transfer named, else the source account's; None when
    neither names one (a source that was never opened, a transfer without a currency)."""

    TYPE: ClassVar[str] = "accountDebitDeclined"
    SCHEMA_VERSION: ClassVar[int] = 2
    transfer_id: UUID
    amount: int
    currency: str | None = None
    reason: DeclineReason


class AccountCreditedForTransfer(DomainEvent):
    TYPE: ClassVar[str] = "accountCreditedForTransfer"
    transfer_id: UUID
    amount: int
    currency: str
    balance_after: int


class AccountCreditDeclined(DomainEvent):
    """The target account could not take the amount; the saga refunds the source."""

    TYPE: ClassVar[str] = "accountCreditDeclined"
    transfer_id: UUID
    amount: int
    currency: str
    reason: DeclineReason


class AccountRefundedForTransfer(DomainEvent):
    """A debited amount came back to the source account (its credit was declined)."""

    TYPE: ClassVar[str] = "accountRefundedForTransfer"
    transfer_id: UUID
    amount: int
    currency: str
    balance_after: int


# -- transfer events --------------------------------------------------------------------------
class TransferRequested(DomainEvent):
    TYPE: ClassVar[str] = "transferRequested"
    from_account_id: UUID
    to_account_id: UUID
    amount: int
    currency: str | None = None


class TransferCompleted(DomainEvent):
    TYPE: ClassVar[str] = "transferCompleted"


class TransferRefunded(DomainEvent):
    TYPE: ClassVar[str] = "transferRefunded"
    reason: DeclineReason


class TransferDeclined(DomainEvent):
    TYPE: ClassVar[str] = "transferDeclined"
    reason: DeclineReason
