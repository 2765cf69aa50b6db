"""The system aggregate: one per system id; the tenant has a default one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.messages import DomainEvent
from commands_app.slices.system.payloads import (
    FailureSimulated,
    MessageLogged,
    MultiEventEmitted,
    RetryableTestExecuted,
    TestExecuted,
)


@dataclass
class System(Aggregate):
    TYPE: ClassVar[str] = "system"
    # v2 added messages_by_level (see upcasters.system_state_v1_to_v2).
    SNAPSHOT_SCHEMA_VERSION: ClassVar[int] = 2

    number_executed_tests: int = 0
    messages_logged: int = 0
    messages_by_level: dict[str, int] = field(default_factory=dict)
    events_emitted: int = 0
    last_test_id: str | None = None

    def apply(self, event: DomainEvent) -> None:
        match event:
            case TestExecuted():
                self.number_executed_tests = event.number_executed_tests
                self.last_test_id = str(event.test_id)
            case RetryableTestExecuted():
                self.last_test_id = str(event.test_id)
            case MessageLogged():
                self.messages_logged += 1
                self.messages_by_level[event.level] = self.messages_by_level.get(event.level, 0) + 1
            case MultiEventEmitted():
                self.events_emitted += 1
            case FailureSimulated():
                pass
