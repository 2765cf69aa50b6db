"""Decisions of the system slice: (state, command, context) -> new events."""

from __future__ import annotations

from collections.abc import Sequence

from commands_app.domain.errors import DomainError, RetryableDomainError
from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent
from commands_app.domain.registry import Handler
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import (
    EmitMultipleEvents,
    ExecuteRetryableTest,
    ExecuteTest,
    LogMessage,
    MessageLogged,
    MultiEventEmitted,
    RetryableTestExecuted,
    SimulateFailure,
    TestExecuted,
)


def log_message(system: System, cmd: LogMessage, ctx: CommandContext) -> Sequence[DomainEvent]:
    return [MessageLogged(text=cmd.message, level=cmd.level, system_id=system.id)]


def simulate_failure(system: System, cmd: SimulateFailure, ctx: CommandContext) -> Sequence[DomainEvent]:
    # Failing without recording a failureSimulated event keeps "a failed command changed
    # nothing" true without exception; the event type stays registered for old logs.
    raise DomainError("Simulated failure, as requested.", code="simulated_failure")


def emit_multiple_events(
    system: System, cmd: EmitMultipleEvents, ctx: CommandContext
) -> Sequence[DomainEvent]:
    return [MultiEventEmitted(index=i, system_id=system.id) for i in range(cmd.count)]


def execute_test(system: System, cmd: ExecuteTest, ctx: CommandContext) -> Sequence[DomainEvent]:
    if ctx.user_id is None:
        raise DomainError("A test needs a user to run it.", code="tester_required")
    expected = (cmd.parameters or {}).get("expectedResult", "success")
    result = "failure" if expected == "failure" else "success"
    return [
        TestExecuted(
            test_id=cmd.test_id,
            test_name=cmd.test_name,
            tester_id=ctx.user_id,
            result=result,
            executed_at=ctx.now,
            number_executed_tests=system.number_executed_tests + 1,
            system_id=system.id,
            parameters=cmd.parameters,
        )
    ]


def execute_retryable_test(
    system: System, cmd: ExecuteRetryableTest, ctx: CommandContext
) -> Sequence[DomainEvent]:
    if system.version % 2 == 0:
        raise RetryableDomainError(
            f"System is at an even version ({system.version}); try again later.",
            code="system_version_even",
            details={"version": system.version},
        )
    return [
        RetryableTestExecuted(
            test_id=cmd.test_id,
            test_name=cmd.test_name,
            result="success",
            executed_at=ctx.now,
            system_id=system.id,
            parameters=cmd.parameters,
        )
    ]


COMMAND_HANDLERS: dict[type[DomainCommand], Handler] = {
    LogMessage: log_message,
    SimulateFailure: simulate_failure,
    EmitMultipleEvents: emit_multiple_events,
    ExecuteTest: execute_test,
    ExecuteRetryableTest: execute_retryable_test,
}
