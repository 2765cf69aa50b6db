"""The transfer saga: moves a requested transfer's money, one account at a time.

    transferRequested           -> debit the source
    accountDebitedForTransfer   -> credit the target
    accountCreditedForTransfer  -> mark the transfer completed
    accountCreditDeclined       -> refund the source
    accountRefundedForTransfer  -> mark the transfer refunded
    accountDebitDeclined        -> mark the transfer declined (nothing moved, nothing to refund)
    transferCompleted | transferRefunded | transferDeclined -> the instance is finished

One instance per transfer id. Its state carries what the next step needs (source,
target, amount, currency) and the step it waits for, so a trigger that arrives out of
turn (a duplicate, or a leg for a transfer this saga never saw requested) issues nothing.
Every step's handler records an event whatever it decides (see handlers.py), so every
instance reaches one of the three outcomes; money is in flight only between a debit and
its credit or refund.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from commands_app.domain.messages import Recorded
from commands_app.domain.saga import HandledCommand, Issue, Reaction, Saga, SagaState
from commands_app.slices.banking.aggregate import Transfer
from commands_app.slices.banking.payloads import (
    AccountCreditDeclined,
    AccountCreditedForTransfer,
    AccountDebitDeclined,
    AccountDebitedForTransfer,
    AccountRefundedForTransfer,
    CreditAccountForTransfer,
    DebitAccountForTransfer,
    MarkTransferCompleted,
    MarkTransferDeclined,
    MarkTransferRefunded,
    RefundAccountForTransfer,
    TransferCompleted,
    TransferDeclined,
    TransferRefunded,
    TransferRequested,
)

# Steps an instance waits in (state["step"]); the last three are the outcomes.
DEBITING, CREDITING, COMPLETING, REFUNDING, MARKING_REFUNDED, DECLINING = (
    "debiting",
    "crediting",
    "completing",
    "refunding",
    "marking_refunded",
    "declining",
)


def transfer_key(trigger: Recorded[Any] | HandledCommand) -> str:
    """The transfer a trigger belongs to: the stream of a transfer event, the
    `transferId` of an account's transfer leg. Total, as the runner may ask about any event."""
    if isinstance(trigger, HandledCommand):
        return ""
    if trigger.stream_type == Transfer.TYPE:
        return str(trigger.stream_id)
    transfer_id = getattr(trigger.event, "transfer_id", None)
    return "" if transfer_id is None else str(transfer_id)


def _waiting_for(state: SagaState, step: str) -> bool:
    return state.get("step") == step


def on_transfer_requested(rec: Recorded[TransferRequested], state: SagaState) -> Reaction | Sequence[Issue]:
    if state:
        return []  # this instance has started already
    event = rec.event
    debit = DebitAccountForTransfer(
        account_id=event.from_account_id,
        transfer_id=rec.stream_id,
        amount=event.amount,
        currency=event.currency,
    )
    return Reaction(
        issue=[Issue(debit, key="debit")],
        state={
            "from": str(event.from_account_id),
            "to": str(event.to_account_id),
            "amount": event.amount,
            "currency": event.currency,
            "step": DEBITING,
        },
    )


def on_debited(rec: Recorded[AccountDebitedForTransfer], state: SagaState) -> Reaction | Sequence[Issue]:
    if not _waiting_for(state, DEBITING):
        return []
    event = rec.event
    credit = CreditAccountForTransfer(
        account_id=UUID(state["to"]),
        transfer_id=event.transfer_id,
        amount=event.amount,
        # The source's currency: the target declines the credit if it keeps another one.
        currency=event.currency,
    )
    return Reaction(
        issue=[Issue(credit, key="credit")],
        state={**state, "amount": event.amount, "currency": event.currency, "step": CREDITING},
    )


def on_debit_declined(rec: Recorded[AccountDebitDeclined], state: SagaState) -> Reaction | Sequence[Issue]:
    if not _waiting_for(state, DEBITING):
        return []
    event = rec.event
    return Reaction(
        issue=[
            Issue(MarkTransferDeclined(transfer_id=event.transfer_id, reason=event.reason), key="decline")
        ],
        state={**state, "reason": event.reason, "step": DECLINING},
    )


def on_credited(rec: Recorded[AccountCreditedForTransfer], state: SagaState) -> Reaction | Sequence[Issue]:
    if not _waiting_for(state, CREDITING):
        return []
    return Reaction(
        issue=[Issue(MarkTransferCompleted(transfer_id=rec.event.transfer_id), key="complete")],
        state={**state, "step": COMPLETING},
    )


def on_credit_declined(rec: Recorded[AccountCreditDeclined], state: SagaState) -> Reaction | Sequence[Issue]:
    if not _waiting_for(state, CREDITING):
        return []
    event = rec.event
    refund = RefundAccountForTransfer(account_id=UUID(state["from"]), transfer_id=event.transfer_id)
    return Reaction(
        issue=[Issue(refund, key="refund")],
        state={**state, "reason": event.reason, "step": REFUNDING},
    )


def on_refunded(rec: Recorded[AccountRefundedForTransfer], state: SagaState) -> Reaction | Sequence[Issue]:
    if not _waiting_for(state, REFUNDING):
        return []
    mark = MarkTransferRefunded(transfer_id=rec.event.transfer_id, reason=state["reason"])
    return Reaction(issue=[Issue(mark, key="mark-refunded")], state={**state, "step": MARKING_REFUNDED})


def _finish(state: SagaState, outcome: str) -> Reaction:
    return Reaction(state={**state, "step": outcome}, finished=True)


def on_transfer_completed(rec: Recorded[TransferCompleted], state: SagaState) -> Reaction:
    return _finish(state, "completed")


def on_transfer_refunded(rec: Recorded[TransferRefunded], state: SagaState) -> Reaction:
    return _finish(state, "refunded")


def on_transfer_declined(rec: Recorded[TransferDeclined], state: SagaState) -> Reaction:
    return _finish(state, "declined")


TRANSFER_SAGA = Saga(
    name="transfer_saga",
    on_events={
        TransferRequested: on_transfer_requested,
        AccountDebitedForTransfer: on_debited,
        AccountDebitDeclined: on_debit_declined,
        AccountCreditedForTransfer: on_credited,
        AccountCreditDeclined: on_credit_declined,
        AccountRefundedForTransfer: on_refunded,
        TransferCompleted: on_transfer_completed,
        TransferRefunded: on_transfer_refunded,
        TransferDeclined: on_transfer_declined,
    },
    instance=transfer_key,
)

SAGAS: tuple[Saga, ...] = (TRANSFER_SAGA,)
