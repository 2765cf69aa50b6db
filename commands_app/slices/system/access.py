"""Who may send and read what in the system slice.

Sending: the reference's role -> command model, enforced before any handler.

Reading: a tester sees only the systems it tested last (the row's `last_tester_id`);
developers, the system role and viewers see every system. Viewers read only: they see
results, not the test parameters or the logged message text, which may carry data the
testers typed in. The tenant-wide counters hold no one's data and every system role reads
them. The commands and events themselves (payloads, usernames) are for developers and the
system role; a tester sees the commands it sent and the events they recorded."""

from __future__ import annotations

from commands_app.domain.messages import DomainCommand
from commands_app.domain.reads import ReadRule, SliceReads
from commands_app.slices.system.payloads import (
    EmitMultipleEvents,
    ExecuteRetryableTest,
    ExecuteTest,
    LogMessage,
    SimulateFailure,
)

ACCESS: dict[str, frozenset[type[DomainCommand]]] = {
    "tester": frozenset({LogMessage, EmitMultipleEvents, ExecuteTest}),
    "system": frozenset({SimulateFailure, ExecuteRetryableTest}),
    "developer": frozenset({LogMessage, EmitMultipleEvents, ExecuteTest, ExecuteRetryableTest}),
}

READS = SliceReads(
    read_models={
        "system_status": ReadRule(
            all_rows=frozenset({"developer", "system", "viewer"}),
            own_rows=frozenset({"tester"}),
            own_field="last_tester_id",
            redacted={"viewer": frozenset({"last_parameters", "last_message"})},
        ),
        "system_metrics": ReadRule(all_rows=frozenset({"tester", "developer", "system", "viewer"})),
    },
    messages=frozenset({"developer", "system"}),
)
