"""The example slice `system`: a port of the reference platform's example domain."""

from commands_app.domain.registry import Slice
from commands_app.slices.system.access import ACCESS, READS
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.handlers import COMMAND_HANDLERS
from commands_app.slices.system.payloads import (
    FailureSimulated,
    MessageLogged,
    MultiEventEmitted,
    RetryableTestExecuted,
    TestExecuted,
)
from commands_app.slices.system.personal import PERSONAL
from commands_app.slices.system.sagas import SAGAS
from commands_app.slices.system.upcasters import SNAPSHOT_UPCASTERS, UPCASTERS

SLICE = Slice(
    name="system",
    aggregates=(System,),
    command_handlers=COMMAND_HANDLERS,
    events=(
        MessageLogged,
        FailureSimulated,
        MultiEventEmitted,
        TestExecuted,
        RetryableTestExecuted,
    ),
    access=ACCESS,
    reads=READS,
    upcasters=UPCASTERS,
    sagas=SAGAS,
    snapshot_upcasters=SNAPSHOT_UPCASTERS,
    personal=PERSONAL,
)
