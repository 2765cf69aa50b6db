"""Wire contracts of the system slice (same names as the reference platform)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid5

from pydantic import Field

from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent

# The tenant's default system aggregate has a stable, valid uuid (the reference used the
# string "system", which is not a uuid and broke every uuid-typed column downstream).
_DEFAULT_SYSTEM_NAMESPACE = UUID("6f1c1b8e-2f4e-4d59-9a57-3f0c1e7b9d10")


def default_system_id(tenant: str) -> UUID:
    return uuid5(_DEFAULT_SYSTEM_NAMESPACE, f"system:{tenant}")


class SystemCommand(DomainCommand):
    AGGREGATE_TYPE: ClassVar[str] = "system"

    system_id: UUID | None = None

    def aggregate_id(self, ctx: CommandContext) -> UUID:
        return self.system_id or default_system_id(ctx.tenant)


# -- commands ---------------------------------------------------------------------------------
LogLevel = Literal["debug", "info", "warning", "error"]


class LogMessage(SystemCommand):
    """Record a message on a system."""

    TYPE: ClassVar[str] = "logMessage"
    message: str = Field(min_length=1, max_length=10_000)
    level: LogLevel = "info"


class SimulateFailure(SystemCommand):
    """Always fails with the domain error `simulated_failure`; records nothing."""

    TYPE: ClassVar[str] = "simulateFailure"


class EmitMultipleEvents(SystemCommand):
    """Emit `count` multiEventEmitted events (index 0..count-1) in one transaction."""

    TYPE: ClassVar[str] = "emitMultipleEvents"
    count: int = Field(ge=1, le=100)


class ExecuteTest(SystemCommand):
    """Run a test as the calling user (role tester or developer)."""

    TYPE: ClassVar[str] = "executeTest"
    test_id: UUID
    test_name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None


class ExecuteRetryableTest(SystemCommand):
    """Like executeTest, but fails with a retryable error while the system's version is even."""

    TYPE: ClassVar[str] = "executeRetryableTest"
    test_id: UUID
    test_name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None


# -- events -----------------------------------------------------------------------------------
class MessageLogged(DomainEvent):
    """A message was logged. v1 (the reference's shape) had `message`; v2 renamed it to
    `text`; v3 added `level`. Older events are upcast on read (see upcasters.py)."""

    TYPE: ClassVar[str] = "messageLogged"
    SCHEMA_VERSION: ClassVar[int] = 3

    text: str
    level: LogLevel = "info"
    system_id: UUID | None = None


class FailureSimulated(DomainEvent):
    """Registered for compatibility with the reference's event log; this platform never emits it."""

    TYPE: ClassVar[str] = "failureSimulated"
    system_id: UUID | None = None


class MultiEventEmitted(DomainEvent):
    TYPE: ClassVar[str] = "multiEventEmitted"
    index: int
    system_id: UUID | None = None


class TestExecuted(DomainEvent):
    TYPE: ClassVar[str] = "testExecuted"
    __test__ = False  # not a pytest test class

    test_id: UUID
    test_name: str
    tester_id: str
    result: Literal["success", "failure"]
    executed_at: datetime
    number_executed_tests: int
    system_id: UUID | None = None
    parameters: dict[str, Any] | None = None


class RetryableTestExecuted(DomainEvent):
    TYPE: ClassVar[str] = "retryableTestExecuted"

    test_id: UUID
    test_name: str
    result: Literal["success"]
    executed_at: datetime
    system_id: UUID | None = None
    parameters: dict[str, Any] | None = None
