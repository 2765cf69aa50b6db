"""The banking aggregates: Account (one per account id) and Transfer (one per transfer id).

Every piece of state is a typed dataclass field, the transfer legs an account has taken
part in included, so a snapshot restores exactly what a replay builds (see
domain.aggregate.Aggregate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal
from uuid import UUID

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.messages import DomainEvent
from commands_app.slices.banking.payloads import (
    AccountClosed,
    AccountCreditDeclined,
    AccountCreditedForTransfer,
    AccountDebitDeclined,
    AccountDebitedForTransfer,
    AccountOpened,
    AccountRefundedForTransfer,
    DeclineReason,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferCompleted,
    TransferDeclined,
    TransferRefunded,
    TransferRequested,
)


@dataclass
class Account(Aggregate):
    TYPE: ClassVar[str] = "account"

    opened: bool = False
    closed: bool = False
    owner: str = ""
    currency: str = ""
    balance: int = 0
    # Transfer legs this account has taken part in, by transfer id. They make the
    # internal commands idempotent per transfer: a second debit, credit or refund for the
    # same transfer would move money twice, so it records nothing instead.
    debits: dict[UUID, int] = field(default_factory=dict)  # debited amount
    credits: dict[UUID, int] = field(default_factory=dict)  # credited amount
    refunds: set[UUID] = field(default_factory=set)  # debits given back
    declined: set[UUID] = field(default_factory=set)  # debits or credits this account declined

    def apply(self, event: DomainEvent) -> None:
        match event:
            case AccountOpened():
                self.opened = True
                self.owner = event.owner
                self.currency = event.currency
            case MoneyDeposited() | MoneyWithdrawn():
                self.balance = event.balance_after
            case AccountClosed():
                self.closed = True
            case AccountDebitedForTransfer():
                self.debits[event.transfer_id] = event.amount
                self.balance = event.balance_after
            case AccountCreditedForTransfer():
                self.credits[event.transfer_id] = event.amount
                self.balance = event.balance_after
            case AccountRefundedForTransfer():
                self.refunds.add(event.transfer_id)
                self.balance = event.balance_after
            case AccountDebitDeclined() | AccountCreditDeclined():
                self.declined.add(event.transfer_id)


TransferStage = Literal["new", "requested", "completed", "refunded", "declined"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "refunded", "declined"})


@dataclass
class Transfer(Aggregate):
    TYPE: ClassVar[str] = "transfer"

    status: TransferStage = "new"
    from_account_id: UUID | None = None
    to_account_id: UUID | None = None
    amount: int = 0
    currency: str | None = None
    reason: DeclineReason | None = None

    @property
    def is_settled(self) -> bool:
        return self.status in FINAL_STATUSES

    def apply(self, event: DomainEvent) -> None:
        match event:
            case TransferRequested():
                self.status = "requested"
                self.from_account_id = event.from_account_id
                self.to_account_id = event.to_account_id
                self.amount = event.amount
                self.currency = event.currency
            case TransferCompleted():
                self.status = "completed"
            case TransferRefunded():
                self.status = "refunded"
                self.reason = event.reason
            case TransferDeclined():
                self.status = "declined"
                self.reason = event.reason
