"""The PostgreSQL event store: append with optimistic concurrency, load with snapshots.

This is the one boundary where the unique-version IntegrityError becomes ConcurrencyError.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection
from django.utils import timezone

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.errors import ConcurrencyError
from commands_app.domain.messages import DomainEvent, Recorded
from commands_app.domain.registry import Registry
from events_app.models import Event, Snapshot
from intent_project.jsoncodec import ExactJSONEncoder

A = TypeVar("A", bound=Aggregate)
log = logging.getLogger(__name__)

_VERSION_CONSTRAINT = "event_stream_version_unique"
_EVENTS = Event._meta.db_table
_SNAPSHOTS = Snapshot._meta.db_table
_LOCK = f"LOCK TABLE {_EVENTS} IN EXCLUSIVE MODE"  # why: PostgresEventStore.lock_for_append
# Appends of up to this many events use plain placeholders; longer ones go as one JSON document.
_VALUES_UP_TO = 8
_VALUES_ROW = (
    "(%s::uuid, %s, %s::uuid, %s::int, %s, %s::smallint, %s::jsonb, %s::jsonb, %s::uuid, %s::uuid,"
    " %s::uuid, %s::timestamptz, %s::int)"
)
_COLUMNS = "(i, st, si, v, t, sv, p, m, co, ca, cm, r, n)"
_RECORDSET_COLUMNS = (
    "(i uuid, st varchar, si uuid, v int, t varchar, sv smallint, p jsonb, m jsonb, co uuid, ca uuid,"
    " cm uuid, r timestamptz, n int)"
)


def _json(value: Any) -> Any:
    """jsonb as the driver hands it to raw SQL: text (Django's psycopg setup) or parsed."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _uuid_or_none(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


# The columns `recorded_from_values` expects, in order (for .values_list(*RECORD_FIELDS)).
RECORD_FIELDS = (
    "id",
    "position",
    "type",
    "schema_version",
    "payload",
    "stream_type",
    "stream_id",
    "version",
    "recorded_at",
    "metadata",
)


def recorded_from_values(values: Sequence[Any], registry: Registry) -> Recorded[DomainEvent]:
    """A stored event, given as the values of RECORD_FIELDS, as a typed event upcast to the
    payload's current schema version (the projection runner reads tuples, not rows)."""
    event_id, position, type_name, schema_version, payload, stream_type, stream_id, version, at, meta = values
    return Recorded(
        event=registry.parse_event(type_name, schema_version, payload),
        id=event_id,
        stream_type=stream_type,
        stream_id=stream_id,
        version=version,
        position=position,
        recorded_at=at,
        metadata=meta,
    )


def to_recorded(row: Event, registry: Registry) -> Recorded[DomainEvent]:
    """A stored row as a typed event, upcast to the payload's current schema version."""
    return recorded_from_values([getattr(row, name) for name in RECORD_FIELDS], registry)


def snapshot_interval(aggregate_cls: type[Aggregate]) -> int:
    """Events between snapshots for this aggregate type: settings per type, class, default."""
    by_type: dict[str, int] = settings.SNAPSHOT_EVERY_BY_TYPE
    if aggregate_cls.TYPE in by_type:
        return by_type[aggregate_cls.TYPE]
    if aggregate_cls.SNAPSHOT_EVERY is not None:
        return aggregate_cls.SNAPSHOT_EVERY
    return int(settings.SNAPSHOT_EVERY)


@dataclass(frozen=True)
class Staged:
    """One event decided and numbered, not yet written."""

    aggregate: Aggregate
    event_id: UUID
    version: int
    event: DomainEvent
    metadata: dict[str, Any]
    recorded_at: datetime


def _recorded(staged: Sequence[Staged], positions: Sequence[int]) -> list[Recorded[DomainEvent]]:
    return [
        Recorded(
            event=item.event,
            id=item.event_id,
            stream_type=item.aggregate.TYPE,
            stream_id=item.aggregate.id,
            version=item.version,
            position=position,
            recorded_at=item.recorded_at,
            metadata=item.metadata,
        )
        for item, position in zip(staged, positions, strict=True)
    ]


class PostgresEventStore:
    """Event store over the current tenant schema's tables (set by schema_context)."""

    def __init__(self, registry: Registry, snapshot_every: int | None = None) -> None:
        self.registry = registry
        # An explicit value (tests, benchmarks) wins over every configured one.
        self.snapshot_every = snapshot_every

    # The load and append paths run for every command, so they speak SQL directly: the
    # ORM's query building cost more than the round trips here (see docs/benchmarks.md).
    def load(self, aggregate_cls: type[A], aggregate_id: UUID) -> A:
        key = (aggregate_cls.TYPE, aggregate_id)
        aggregate: A = self.load_many({key: aggregate_cls})[key]  # type: ignore[assignment]
        return aggregate

    def load_many(
        self, wanted: Mapping[tuple[str, UUID], type[Aggregate]]
    ) -> dict[tuple[str, UUID], Aggregate]:
        """Several aggregates in two queries (newest snapshots, then the events after them).

        Keys are (aggregate type, id). Used by the command batch; `load` is the same for one.
        """
        if not wanted:
            return {}
        keys = list(wanted)
        found: dict[tuple[str, UUID], Aggregate] = {}
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT ON (stream_id, stream_type) stream_type, stream_id, version, schema_version,"
                f" state FROM {_SNAPSHOTS} WHERE (stream_type, stream_id) IN ({', '.join(['(%s, %s)'] * len(keys))})"
                " ORDER BY stream_id, stream_type, version DESC",
                [part for key in keys for part in key],
            )
            for stream_type, stream_id, version, schema_version, state in cursor.fetchall():
                key = (stream_type, stream_id)
                cls = wanted[key]
                restored = self._restore(cls, stream_id, version, schema_version, state)
                # The newest snapshot is unusable: let the one-by-one path try older ones.
                found[key] = restored or self._from_snapshot(cls, stream_id) or cls(id=stream_id)
            for key in keys:
                if key not in found:
                    found[key] = wanted[key](id=key[1])
            cursor.execute(
                f"SELECT e.stream_type, e.stream_id, e.type, e.schema_version, e.payload, e.version FROM {_EVENTS} e"
                f" JOIN (VALUES {', '.join(['(%s, %s::uuid, %s::int)'] * len(keys))}) AS k(t, i, v)"
                " ON e.stream_id = k.i AND e.stream_type = k.t AND e.version > k.v"
                " ORDER BY e.stream_id, e.stream_type, e.version",
                [part for key in keys for part in (key[0], key[1], found[key].version)],
            )
            for stream_type, stream_id, type_name, schema_version, payload, version in cursor.fetchall():
                event = self.registry.parse_event(type_name, schema_version, _json(payload))
                found[(stream_type, stream_id)].evolve(event, version)
        return found

    def _from_snapshot(self, aggregate_cls: type[A], aggregate_id: UUID) -> A | None:
        """The newest usable snapshot, upcast to the current state version; None: replay."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT version, schema_version, state FROM {_SNAPSHOTS}"
                " WHERE stream_id = %s AND stream_type = %s AND schema_version <= %s"
                " ORDER BY version DESC LIMIT 3",
                [aggregate_id, aggregate_cls.TYPE, aggregate_cls.SNAPSHOT_SCHEMA_VERSION],
            )
            snapshots = cursor.fetchall()
        for version, schema_version, state in snapshots:
            aggregate = self._restore(aggregate_cls, aggregate_id, version, schema_version, state)
            if aggregate is not None:
                return aggregate
        return None

    def _restore(
        self, aggregate_cls: type[A], aggregate_id: UUID, version: int, schema_version: int, state: Any
    ) -> A | None:
        """One snapshot as an aggregate, upcast if needed; None when it cannot be used.

        A snapshot is only a cache: one that cannot be upcast or no longer fits the fields
        is skipped (an older one, or the whole stream, is used instead)."""
        try:
            upcast = self.registry.upcast_snapshot(aggregate_cls, schema_version, _json(state))
            if upcast is None:
                return None
            aggregate = aggregate_cls.from_snapshot(upcast)
        except (TypeError, ValueError, KeyError):  # pydantic's ValidationError is a ValueError
            log.warning(
                "ignoring unusable snapshot of %s/%s at v%s", aggregate_cls.TYPE, aggregate_id, version
            )
            return None
        if aggregate.id != aggregate_id:
            return None
        aggregate.version = version
        return aggregate

    def lock_for_append(self) -> None:
        """Take this tenant's append lock until the end of the current transaction.

        Positions come from a sequence, and sequences are handed out before commit, so two
        concurrent appends could commit in the opposite order of their positions and a
        reader at "up to N" would skip the late one forever. Holding this lock from the
        insert to commit serialises appends *within this tenant* (the table is per schema,
        so other tenants never wait) and makes position order equal commit order.
        EXCLUSIVE still admits plain SELECTs (readers never block). Taken before loading,
        it also guarantees that what is loaded is the stream's head until commit.
        """
        assert connection.in_atomic_block, "the append lock lives as long as a transaction"
        with connection.cursor() as cursor:
            cursor.execute(_LOCK)

    def append(
        self,
        aggregate: Aggregate,
        events: Sequence[DomainEvent],
        metadata: Mapping[str, Any],
        *,
        lock_held: bool = False,
    ) -> list[Recorded[DomainEvent]]:
        """Append `events` after `aggregate.version` or raise ConcurrencyError.

        One round trip: the append lock and an INSERT that only inserts when the stream is
        still at the expected version. Under the lock that check is exact, so a lost race
        is a clean ConcurrencyError and the caller's transaction stays usable; the unique
        (stream, version) constraint remains the last line of defence.
        `lock_held`: the caller took `lock_for_append()` earlier in this transaction.
        """
        assert connection.in_atomic_block, "append must run inside the command's transaction"
        if not events:
            return []
        expected = aggregate.version
        staged = self.stage(aggregate, events, metadata)
        positions = self._insert(staged, lock=not lock_held, expect=(aggregate, expected))
        for item in staged:
            aggregate.evolve(item.event, item.version)
        self._maybe_snapshot(aggregate, expected)
        return _recorded(staged, positions)

    def stage(
        self, aggregate: Aggregate, events: Sequence[DomainEvent], metadata: Mapping[str, Any]
    ) -> list[Staged]:
        """The rows `events` become after `aggregate.version` (nothing is written yet)."""
        now = timezone.now()
        return [
            # `seq` numbers the events of one append (1 = the first a command recorded).
            Staged(
                aggregate, uuid.uuid4(), aggregate.version + offset, event, {**metadata, "seq": offset}, now
            )
            for offset, event in enumerate(events, start=1)
        ]

    def write_staged(self, staged: Sequence[Staged]) -> list[Recorded[DomainEvent]]:
        """Insert rows staged (and already applied to their aggregates) by several decisions.

        One statement for a whole batch of commands. The append lock must be held.
        """
        if not staged:
            return []
        positions = self._insert(staged, lock=False, expect=None)
        # Each aggregate's version before the batch (its first staged row's, less one), to
        # take the snapshots whose threshold the batch crossed.
        before: dict[int, tuple[Aggregate, int]] = {}
        for item in staged:
            before.setdefault(id(item.aggregate), (item.aggregate, item.version - 1))
        for aggregate, version in before.values():
            self._maybe_snapshot(aggregate, version)
        return _recorded(staged, positions)

    def _insert(
        self, staged: Sequence[Staged], *, lock: bool, expect: tuple[Aggregate, int] | None
    ) -> list[int]:
        """Insert staged rows in one statement; with `lock`, take the append lock in the
        same round trip; with `expect` (aggregate, version), insert only if that stream is
        still at that version (raise ConcurrencyError, without aborting, if not)."""
        params: list[Any]
        if len(staged) <= _VALUES_UP_TO:
            # A few rows: plain placeholders are cheapest to send.
            source = "(VALUES " + ", ".join([_VALUES_ROW] * len(staged)) + f") AS u{_COLUMNS}"
            params = [
                value
                for n, item in enumerate(staged, start=1)
                for value in (
                    item.event_id,
                    item.aggregate.TYPE,
                    item.aggregate.id,
                    item.version,
                    item.event.TYPE,
                    item.event.SCHEMA_VERSION,
                    json.dumps(item.event.to_wire(), cls=DjangoJSONEncoder),
                    json.dumps(item.metadata, cls=DjangoJSONEncoder),
                    _uuid_or_none(item.metadata.get("correlation_id")),
                    _uuid_or_none(item.metadata.get("causation_id")),
                    _uuid_or_none(item.metadata.get("command_id")),
                    item.recorded_at,
                    n,
                )
            ]
        else:
            # Many rows: the whole batch as one JSON document, one parameter. The driver
            # parses statements and escapes array elements in Python; one JSON string is
            # encoded in C and escaped once.
            source = f"jsonb_to_recordset(%s::jsonb) AS u{_RECORDSET_COLUMNS}"
            params = [
                json.dumps(
                    [
                        {
                            "i": item.event_id,
                            "st": item.aggregate.TYPE,
                            "si": item.aggregate.id,
                            "v": item.version,
                            "t": item.event.TYPE,
                            "sv": item.event.SCHEMA_VERSION,
                            "p": item.event.to_wire(),
                            "m": item.metadata,
                            "co": _uuid_or_none(item.metadata.get("correlation_id")),
                            "ca": _uuid_or_none(item.metadata.get("causation_id")),
                            "cm": _uuid_or_none(item.metadata.get("command_id")),
                            "r": item.recorded_at,
                            "n": n,
                        }
                        for n, item in enumerate(staged, start=1)
                    ],
                    cls=ExactJSONEncoder,
                )
            ]
        guard = ""
        if expect is not None:
            guarded, version = expect
            guard = (
                f" WHERE (SELECT coalesce(max(version), 0) FROM {_EVENTS}"
                " WHERE stream_id = %s AND stream_type = %s) = %s"
            )
            params += [guarded.id, guarded.TYPE, version]
        # ORDER BY n keeps positions in staging order; RETURNING reports them in that order.
        insert = (
            f"INSERT INTO {_EVENTS} (id, stream_type, stream_id, version, type, schema_version,"
            " payload, metadata, correlation_id, causation_id, command_id, recorded_at)"
            f" SELECT i, st, si, v, t, sv, p, m, co, ca, cm, r FROM {source}{guard} ORDER BY n"
            " RETURNING position"
        )
        try:
            with connection.cursor() as cursor:
                if lock:
                    # See lock_for_append. Sent with the INSERT: the INSERT's snapshot (READ
                    # COMMITTED, taken once the lock is granted) sees every earlier append.
                    cursor.execute(f"{_LOCK}; {insert}", params)
                    cursor.nextset()
                else:
                    cursor.execute(insert, params)
                positions = [position for (position,) in cursor.fetchall()]
        except IntegrityError as exc:
            # A unique violation here is the (stream, version) guard: the only other unique
            # column is the random event id. The name check keeps the message precise.
            if _VERSION_CONSTRAINT in str(exc) or getattr(exc.__cause__, "sqlstate", None) == "23505":
                first = staged[0]
                raise ConcurrencyError(
                    f"Stream {first.aggregate.TYPE}/{first.aggregate.id} moved past version {first.version - 1}.",
                    details={
                        "stream_type": first.aggregate.TYPE,
                        "stream_id": str(first.aggregate.id),
                        "expected_version": first.version - 1,
                    },
                ) from exc
            raise
        if expect is not None and staged and not positions:
            guarded, version = expect
            raise ConcurrencyError(
                f"Stream {guarded.TYPE}/{guarded.id} moved past version {version}.",
                details={
                    "stream_type": guarded.TYPE,
                    "stream_id": str(guarded.id),
                    "expected_version": version,
                },
            )
        return positions

    def _maybe_snapshot(self, aggregate: Aggregate, previous_version: int) -> None:
        every = snapshot_interval(type(aggregate)) if self.snapshot_every is None else self.snapshot_every
        if every <= 0 or previous_version // every == aggregate.version // every:
            return
        # Same transaction as the events that crossed the threshold: never a snapshot of
        # state whose events were rolled back.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_SNAPSHOTS} (stream_type, stream_id, version, schema_version, state, created_at)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, now()) ON CONFLICT DO NOTHING",
                [
                    aggregate.TYPE,
                    aggregate.id,
                    aggregate.version,
                    aggregate.SNAPSHOT_SCHEMA_VERSION,
                    json.dumps(aggregate.snapshot_state(), cls=DjangoJSONEncoder),
                ],
            )

    def read_stream(self, aggregate_type: str, aggregate_id: UUID) -> list[Recorded[DomainEvent]]:
        rows = Event.objects.filter(stream_id=aggregate_id, stream_type=aggregate_type).order_by("version")
        return [to_recorded(row, self.registry) for row in rows]
