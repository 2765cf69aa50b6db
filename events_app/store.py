"""The PostgreSQL event store: append with optimistic concurrency, load with snapshots.

This is the one boundary where the unique-version IntegrityError becomes ConcurrencyError.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.errors import ConcurrencyError
from commands_app.domain.messages import Event, Recorded
from commands_app.domain.registry import Registry
from events_app.models import Event as EventRow
from events_app.models import Snapshot

A = TypeVar("A", bound=Aggregate)
log = logging.getLogger(__name__)

_VERSION_CONSTRAINT = "event_stream_version_unique"


def _uuid_or_none(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def to_recorded(row: EventRow, registry: Registry) -> Recorded[Event]:
    """A stored row as a typed event, upcast to the payload's current schema version."""
    return Recorded(
        event=registry.parse_event(row.type, row.schema_version, row.payload),
        id=row.id,
        stream_type=row.stream_type,
        stream_id=row.stream_id,
        version=row.version,
        position=row.position,
        recorded_at=row.recorded_at,
        metadata=row.metadata,
    )


def snapshot_interval(aggregate_cls: type[Aggregate]) -> int:
    """Events between snapshots for this aggregate type: settings per type, class, default."""
    by_type: dict[str, int] = settings.SNAPSHOT_EVERY_BY_TYPE
    if aggregate_cls.TYPE in by_type:
        return by_type[aggregate_cls.TYPE]
    if aggregate_cls.SNAPSHOT_EVERY is not None:
        return aggregate_cls.SNAPSHOT_EVERY
    return int(settings.SNAPSHOT_EVERY)


class PostgresEventStore:
    """Event store over the current tenant schema's tables (set by schema_context)."""

    def __init__(self, registry: Registry, snapshot_every: int | None = None) -> None:
        self.registry = registry
        # An explicit value (tests, benchmarks) wins over every configured one.
        self.snapshot_every = snapshot_every

    def load(self, aggregate_cls: type[A], aggregate_id: UUID) -> A:
        aggregate = self._from_snapshot(aggregate_cls, aggregate_id) or aggregate_cls(id=aggregate_id)
        rows = (
            EventRow.objects.filter(
                stream_id=aggregate_id,
                stream_type=aggregate_cls.TYPE,
                version__gt=aggregate.version,
            )
            .order_by("version")
            .values_list("type", "schema_version", "payload", "version")
        )
        for type_name, schema_version, payload, version in rows:
            aggregate.evolve(self.registry.parse_event(type_name, schema_version, payload), version)
        return aggregate

    def _from_snapshot(self, aggregate_cls: type[A], aggregate_id: UUID) -> A | None:
        """The newest usable snapshot, upcast to the current state version; None: replay."""
        snapshots = (
            Snapshot.objects.filter(
                stream_id=aggregate_id,
                stream_type=aggregate_cls.TYPE,
                schema_version__lte=aggregate_cls.SNAPSHOT_SCHEMA_VERSION,
            )
            .order_by("-version")
            .values_list("version", "schema_version", "state")[:3]
        )
        for version, schema_version, state in snapshots:
            # A snapshot is only a cache: one that cannot be upcast or no longer fits the
            # fields is skipped (an older one, or the whole stream, is used instead).
            try:
                upcast = self.registry.upcast_snapshot(aggregate_cls, schema_version, state)
                if upcast is None:
                    continue
                aggregate = aggregate_cls.from_snapshot(upcast)
            except (TypeError, ValueError, KeyError):  # pydantic's ValidationError is a ValueError
                log.warning(
                    "ignoring unusable snapshot of %s/%s at v%s", aggregate_cls.TYPE, aggregate_id, version
                )
                continue
            if aggregate.id != aggregate_id:
                continue
            aggregate.version = version
            return aggregate
        return None

    def append(
        self, aggregate: Aggregate, events: Sequence[Event], metadata: Mapping[str, Any]
    ) -> list[Recorded[Event]]:
        assert connection.in_atomic_block, "append must run inside the command's transaction"
        now = timezone.now()
        expected = aggregate.version
        rows = [
            EventRow(
                stream_type=aggregate.TYPE,
                stream_id=aggregate.id,
                version=expected + offset,
                type=event.TYPE,
                schema_version=event.SCHEMA_VERSION,
                payload=event.to_wire(),
                # `seq` numbers the events of one append (1 = the first a command recorded).
                metadata={**metadata, "seq": offset},
                correlation_id=_uuid_or_none(metadata.get("correlation_id")),
                causation_id=_uuid_or_none(metadata.get("causation_id")),
                command_id=_uuid_or_none(metadata.get("command_id")),
                recorded_at=now,
            )
            for offset, event in enumerate(events, start=1)
        ]
        with connection.cursor() as cursor:
            # Positions come from a sequence, and sequences are handed out before commit, so
            # two concurrent appends could commit in the opposite order of their positions
            # and a reader at "up to N" would skip the late one forever. Holding this lock
            # from the insert to commit serialises appends *within this tenant* (the table
            # is per schema, so other tenants never wait) and makes position order equal
            # commit order. EXCLUSIVE still admits plain SELECTs (readers never block).
            cursor.execute(f"LOCK TABLE {EventRow._meta.db_table} IN EXCLUSIVE MODE")
        try:
            # A savepoint keeps the caller's transaction usable after a lost race, so the
            # caller decides what to roll back (the command loop rolls back everything).
            with transaction.atomic():
                EventRow.objects.bulk_create(rows)
        except IntegrityError as exc:
            # A unique violation here is the (stream, version) guard: the only other unique
            # column is the random event id. The name check keeps the message precise.
            if _VERSION_CONSTRAINT in str(exc) or getattr(exc.__cause__, "sqlstate", None) == "23505":
                raise ConcurrencyError(
                    f"Stream {aggregate.TYPE}/{aggregate.id} moved past version {expected}.",
                    details={
                        "stream_type": aggregate.TYPE,
                        "stream_id": str(aggregate.id),
                        "expected_version": expected,
                    },
                ) from exc
            raise
        recorded: list[Recorded[Event]] = []
        for row, event in zip(rows, events, strict=True):
            aggregate.evolve(event, row.version)
            recorded.append(
                Recorded(
                    event=event,
                    id=row.id,
                    stream_type=row.stream_type,
                    stream_id=row.stream_id,
                    version=row.version,
                    position=row.position,
                    recorded_at=now,
                    metadata=row.metadata,
                )
            )
        self._maybe_snapshot(aggregate, expected)
        return recorded

    def _maybe_snapshot(self, aggregate: Aggregate, previous_version: int) -> None:
        every = snapshot_interval(type(aggregate)) if self.snapshot_every is None else self.snapshot_every
        if every <= 0 or previous_version // every == aggregate.version // every:
            return
        # Same transaction as the events that crossed the threshold: never a snapshot of
        # state whose events were rolled back.
        Snapshot.objects.bulk_create(
            [
                Snapshot(
                    stream_type=aggregate.TYPE,
                    stream_id=aggregate.id,
                    version=aggregate.version,
                    schema_version=aggregate.SNAPSHOT_SCHEMA_VERSION,
                    state=aggregate.snapshot_state(),
                )
            ],
            ignore_conflicts=True,
        )

    def read_stream(self, aggregate_type: str, aggregate_id: UUID) -> list[Recorded[Event]]:
        rows = EventRow.objects.filter(stream_id=aggregate_id, stream_type=aggregate_type).order_by("version")
        return [to_recorded(row, self.registry) for row in rows]
