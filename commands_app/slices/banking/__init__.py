"""The banking slice: accounts with balances in minor units, and transfers between them
driven by a saga that always ends them completed, refunded or declined."""

from commands_app.domain.registry import Slice
from commands_app.slices.banking.access import ACCESS, READS
from commands_app.slices.banking.aggregate import Account, Transfer
from commands_app.slices.banking.handlers import COMMAND_HANDLERS
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
from commands_app.slices.banking.personal import PERSONAL
from commands_app.slices.banking.sagas import SAGAS
from commands_app.slices.banking.upcasters import SNAPSHOT_UPCASTERS, UPCASTERS

SLICE = Slice(
    name="banking",
    aggregates=(Account, Transfer),
    command_handlers=COMMAND_HANDLERS,
    events=(
        AccountOpened,
        MoneyDeposited,
        MoneyWithdrawn,
        AccountClosed,
        AccountDebitedForTransfer,
        AccountDebitDeclined,
        AccountCreditedForTransfer,
        AccountCreditDeclined,
        AccountRefundedForTransfer,
        TransferRequested,
        TransferCompleted,
        TransferRefunded,
        TransferDeclined,
    ),
    access=ACCESS,
    reads=READS,
    upcasters=UPCASTERS,
    sagas=SAGAS,
    snapshot_upcasters=SNAPSHOT_UPCASTERS,
    personal=PERSONAL,
)
