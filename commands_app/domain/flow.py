"""Commands, events and sagas wired together in memory: whole processes in unit tests.

`InMemoryFlow` follows the same rules as the PostgreSQL platform (the same `execute`, the
same saga reactions and deterministic command ids, triggers in log order) without a
database, broker or clock: delayed commands run when `run` reaches them, and their
`not_before` is kept for assertions.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from commands_app.domain.errors import IntentError, RetryableDomainError
from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent, Recorded
from commands_app.domain.registry import Registry
from commands_app.domain.saga import HandledCommand, SagaState, instance_key, react
from commands_app.domain.store import InMemoryEventStore, execute


@dataclass
class SentCommand:
    id: UUID
    command: DomainCommand
    ctx: CommandContext
    source: str
    not_before: datetime | None = None
    saga: str | None = None
    status: str = "pending"  # pending, processed, failed
    error: IntentError | None = None
    events: list[Recorded[DomainEvent]] = field(default_factory=list)


class InMemoryFlow:
    def __init__(self, registry: Registry, tenant: str = "acme") -> None:
        self.registry = registry
        self.tenant = tenant
        self.store = InMemoryEventStore(registry)
        self.commands: dict[UUID, SentCommand] = {}
        self.saga_states: dict[tuple[str, str], SagaState] = {}
        self.finished: set[tuple[str, str]] = set()
        self._queue: deque[UUID] = deque()
        self._saga_position = 0

    # -- sending -------------------------------------------------------------------------------
    def send(
        self,
        command: DomainCommand,
        *,
        role: str | None,
        user_id: str | None = "tester-1",
        command_id: UUID | None = None,
        correlation_id: UUID | None = None,
    ) -> SentCommand:
        """What the API does: authorize, then queue. Raises Forbidden like the bus."""
        self.registry.authorize(role, command.TYPE)
        command_id = command_id or uuid.uuid4()
        ctx = self._ctx(command_id, role, user_id, correlation_id or command_id, None)
        return self._queue_command(SentCommand(command_id, command, ctx, source="api"))

    def _ctx(
        self,
        command_id: UUID,
        role: str | None,
        user_id: str | None,
        correlation_id: UUID,
        causation_id: UUID | None,
    ) -> CommandContext:
        return CommandContext(
            command_id=command_id,
            tenant=self.tenant,
            user_id=user_id,
            role=role,
            correlation_id=correlation_id,
            causation_id=causation_id,
            now=datetime.now(UTC),
        )

    def _queue_command(self, sent: SentCommand) -> SentCommand:
        if sent.id in self.commands:  # the same id again: stored once, like the command table
            return self.commands[sent.id]
        self.commands[sent.id] = sent
        self._queue.append(sent.id)
        return sent

    # -- running ---------------------------------------------------------------------------------
    def run(self, max_steps: int = 100_000) -> None:
        """Handle queued commands and feed sagas until nothing is left to do."""
        for _ in range(max_steps):
            if not self.step():
                return
        raise RuntimeError(f"the flow did not settle within {max_steps} steps")

    def step(self) -> bool:
        """One step: handle the next queued command, or else deliver the new events to the
        sagas. False when there was nothing to do (for tests that stop a flow midway)."""
        if self._queue:
            self._handle(self.commands[self._queue.popleft()])
            return True
        return self._feed_sagas()

    def _handle(self, sent: SentCommand) -> None:
        try:
            sent.events = execute(self.store, self.registry, sent.command, sent.ctx)
            sent.status = "processed"
        except RetryableDomainError as exc:  # no clock here: a retry would see the same state
            sent.status, sent.error = "failed", exc
        except IntentError as exc:
            sent.status, sent.error = "failed", exc

    def _feed_sagas(self) -> bool:
        """Deliver the log after the sagas' checkpoint; True if there was anything."""
        records = self.store.read_all(after=self._saga_position)
        if not records:
            return False
        for rec in records:
            for saga in self.registry.sagas.values():
                triggers: list[Recorded[DomainEvent] | HandledCommand] = [rec]
                if rec.metadata.get("seq") == 1:
                    handled = self.commands.get(UUID(str(rec.metadata["command_id"])))
                    if handled is not None:
                        triggers.insert(0, HandledCommand(handled.id, handled.command, rec))
                for trigger in triggers:
                    self._react(saga.name, trigger)
            self._saga_position = rec.position
        return True

    def _react(self, saga_name: str, trigger: Recorded[DomainEvent] | HandledCommand) -> None:
        saga = self.registry.sagas[saga_name]
        key = (saga.name, instance_key(saga, trigger))
        result = react(saga, trigger, self.saga_states.get(key, {}))
        if result is None:
            return
        reaction, issued = result
        if reaction.state is not None:
            self.saga_states[key] = reaction.state
        if reaction.finished:
            self.finished.add(key)
        event = trigger.first_event if isinstance(trigger, HandledCommand) else trigger
        correlation = UUID(str(event.metadata.get("correlation_id") or event.id))
        for command_id, issue in issued:
            ctx = self._ctx(command_id, saga.role, None, correlation, trigger.id)
            not_before = event.recorded_at + issue.delay if issue.delay > timedelta(0) else None
            self._queue_command(
                SentCommand(
                    command_id, issue.command, ctx, source="saga", not_before=not_before, saga=saga.name
                )
            )

    # -- looking ---------------------------------------------------------------------------------
    def events(self) -> list[Recorded[DomainEvent]]:
        return self.store.read_all()

    def issued_by(self, saga_name: str) -> list[SentCommand]:
        return [sent for sent in self.commands.values() if sent.saga == saga_name]
