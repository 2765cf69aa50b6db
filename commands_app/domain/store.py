"""The decision step, the event-store contract and an in-memory implementation.

`decide` is the one place a command meets the state it is decided on. The worker's batch
and one-by-one paths (commands_app.processing) and `execute`, the whole load-decide-append
path the in-memory flow of the unit tests runs, all call it; one contract test suite
keeps `InMemoryEventStore` and `PostgresEventStore` honest.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.errors import ConcurrencyError, IntentError
from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent, Recorded
from commands_app.domain.registry import Registry

A = TypeVar("A", bound=Aggregate)


class EventStore(Protocol):
    def load(self, aggregate_cls: type[A], aggregate_id: UUID) -> A:
        """The aggregate rebuilt from its stream (a fresh one at version 0 if empty)."""

    def append(
        self, aggregate: Aggregate, events: Sequence[DomainEvent], metadata: Mapping[str, Any]
    ) -> list[Recorded[DomainEvent]]:
        """Append `events` after `aggregate.version` or raise ConcurrencyError.

        The expected version is the one the decision was made on (the loaded aggregate's),
        never one re-read at append time. On success the aggregate is evolved in place.
        """

    def refresh(self, aggregate: Aggregate) -> bool:
        """After `append` raised ConcurrencyError: evolve `aggregate` with the events that
        beat it, in the same transaction, so that a decision made on it now cannot lose
        again; False when the transaction cannot go on (the caller then retries it whole)."""

    def read_stream(self, aggregate_type: str, aggregate_id: UUID) -> list[Recorded[DomainEvent]]: ...


@dataclass(frozen=True)
class Decision:
    """What a command decided: the events to append after the version it was decided on,
    and the metadata every one of them carries."""

    events: tuple[DomainEvent, ...]
    metadata: Mapping[str, Any]


def decide(
    registry: Registry, aggregate: Aggregate, command: DomainCommand, ctx: CommandContext
) -> Decision | IntentError:
    """Let the slice decide `command` against `aggregate` as loaded (left unchanged).

    A domain error (a rule said no, or "not now") is returned, not raised, so every
    caller handles it where it handles success; anything else a handler raises is a bug
    and propagates."""
    try:
        events = registry.decide(aggregate, command, ctx)
    except IntentError as refusal:
        return refusal
    return Decision(tuple(events), event_metadata(command, ctx))


def execute(
    store: EventStore, registry: Registry, command: DomainCommand, ctx: CommandContext
) -> list[Recorded[DomainEvent]]:
    """Load the target aggregate, decide, append the result; raises the domain error.

    A lost race is settled here, as the worker's batches settle it: the store brings the
    aggregate to the head that beat it (holding the stream still from then on) and the
    command is decided again on the fresh events only, instead of the caller rolling back
    and reloading the whole stream. ConcurrencyError reaches the caller only when the
    transaction cannot go on."""
    aggregate = store.load(registry.aggregate_for(command), command.aggregate_id(ctx))
    while True:
        decision = decide(registry, aggregate, command, ctx)
        if isinstance(decision, IntentError):
            raise decision
        if not decision.events:
            return []
        version = aggregate.version
        try:
            return store.append(aggregate, decision.events, decision.metadata)
        except ConcurrencyError:
            if not store.refresh(aggregate) or aggregate.version == version:
                raise


def event_metadata(command: DomainCommand, ctx: CommandContext) -> dict[str, Any]:
    """What every event a command records says about where it came from."""
    return {
        "command_id": str(ctx.command_id),
        "command_type": command.TYPE,
        "correlation_id": str(ctx.correlation_id),
        "causation_id": str(ctx.command_id),
        "user_id": ctx.user_id,
        "role": ctx.role,
    }


class InMemoryEventStore:
    """A dict-backed store with the same contract as the PostgreSQL one (for unit tests)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._streams: dict[tuple[str, UUID], list[Recorded[DomainEvent]]] = {}
        self._positions = itertools.count(1)

    def load(self, aggregate_cls: type[A], aggregate_id: UUID) -> A:
        aggregate = aggregate_cls(id=aggregate_id)
        for rec in self._streams.get((aggregate_cls.TYPE, aggregate_id), []):
            aggregate.evolve(rec.event, rec.version)
        return aggregate

    def append(
        self, aggregate: Aggregate, events: Sequence[DomainEvent], metadata: Mapping[str, Any]
    ) -> list[Recorded[DomainEvent]]:
        stream = self._streams.setdefault((aggregate.TYPE, aggregate.id), [])
        current = stream[-1].version if stream else 0
        if current != aggregate.version:
            raise ConcurrencyError(
                f"Stream {aggregate.TYPE}/{aggregate.id} is at version {current}, not {aggregate.version}.",
                details={"expected_version": aggregate.version, "actual_version": current},
            )
        now = datetime.now(UTC)
        recorded = []
        for offset, event in enumerate(events, start=1):
            rec = Recorded(
                event=event,
                id=uuid.uuid4(),
                stream_type=aggregate.TYPE,
                stream_id=aggregate.id,
                version=aggregate.version + offset,
                position=next(self._positions),
                recorded_at=now,
                # `seq` numbers the events of one append (1 = the first a command recorded).
                metadata={**metadata, "seq": offset},
            )
            recorded.append(rec)
        stream.extend(recorded)
        for rec in recorded:
            aggregate.evolve(rec.event, rec.version)
        return recorded

    def refresh(self, aggregate: Aggregate) -> bool:
        for rec in self._streams.get((aggregate.TYPE, aggregate.id), []):
            if rec.version > aggregate.version:
                aggregate.evolve(rec.event, rec.version)
        return True

    def read_stream(self, aggregate_type: str, aggregate_id: UUID) -> list[Recorded[DomainEvent]]:
        return list(self._streams.get((aggregate_type, aggregate_id), []))

    def read_all(self, after: int = 0) -> list[Recorded[DomainEvent]]:
        """Every event after position `after`, in log order."""
        every = [rec for stream in self._streams.values() for rec in stream if rec.position > after]
        return sorted(every, key=lambda rec: rec.position)
