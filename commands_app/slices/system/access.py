"""Who may send what: the reference's role -> command model, enforced before any handler."""

from __future__ import annotations

from commands_app.domain.messages import Command
from commands_app.slices.system.payloads import (
    EmitMultipleEvents,
    ExecuteRetryableTest,
    ExecuteTest,
    LogMessage,
    SimulateFailure,
)

ACCESS: dict[str, frozenset[type[Command]]] = {
    "tester": frozenset({LogMessage, EmitMultipleEvents, ExecuteTest}),
    "system": frozenset({SimulateFailure, ExecuteRetryableTest}),
    "developer": frozenset({LogMessage, EmitMultipleEvents, ExecuteTest, ExecuteRetryableTest}),
}
