"""The PostgreSQL event store: append with optimistic concurrency, load with snapshots.

This is the one boundary where the unique-version IntegrityError becomes ConcurrencyError.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection
from django.utils import timezone

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.errors import ConcurrencyError
from commands_app.domain.messages import DomainEvent, Recorded
from commands_app.domain.registry import Registry
from events_app.models import Event, Snapshot
from events_app.personal import Keyring
from intent_project import announcements, jsoncodec
from intent_project.db import pipeline
from intent_project.rowsets import VALUES_UP_TO, Columns
from intent_project.tenancy import current_schema

A = TypeVar("A", bound=Aggregate)
log = logging.getLogger(__name__)

_VERSION_CONSTRAINT = "event_stream_version_unique"
_EVENTS = Event._meta.db_table
_SNAPSHOTS = Snapshot._meta.db_table
_LOCK = f"LOCK TABLE {_EVENTS} IN EXCLUSIVE MODE"  # why: PostgresEventStore.lock_for_append
# The key every append announces (intent_project/announcements.py): live streams wake on it.
APPENDED_KEY = "events"
# What an append writes: every column but the position (the sequence hands it out), and
# the staging order. Appends of up to VALUES_UP_TO events use plain placeholders; longer
# ones go as one JSON document (intent_project.rowsets).
_APPENDED = Columns.of(
    Event, [f.name for f in Event._meta.concrete_fields if not f.primary_key], helpers=[("n", "int")]
)
# What a snapshot writes (created_at is the database's default, now()).
_SNAPSHOTTED = Columns.of(Snapshot, ["stream_type", "stream_id", "version", "schema_version", "state"])


def _json(value: Any) -> Any:
    """jsonb as the driver hands it to raw SQL: text (Django's psycopg setup) or parsed."""
    return jsoncodec.loads(value) if isinstance(value, str | bytes) else value


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


def recorded_from_values(
    values: Sequence[Any], registry: Registry, keys: Keyring | None = None
) -> Recorded[DomainEvent]:
    """A stored event, given as the values of RECORD_FIELDS, as a typed event upcast to the
    payload's current schema version, its personal data opened (the projection runner
    reads tuples, not rows, and prefetches a batch's `keys`)."""
    event_id, position, type_name, schema_version, payload, stream_type, stream_id, version, at, meta = values
    payload = (keys or Keyring(registry)).reveal("event", type_name, payload)
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


def to_recorded(row: Event, registry: Registry, keys: Keyring | None = None) -> Recorded[DomainEvent]:
    """A stored row as a typed event, upcast to the payload's current schema version."""
    return recorded_from_values([getattr(row, name) for name in RECORD_FIELDS], registry, keys)


def prefetch_keys(rows: Sequence[Sequence[Any]], registry: Registry) -> Keyring:
    """The keys a batch of RECORD_FIELDS tuples needs, fetched in one query."""
    return Keyring(registry).prefetch("event", ((row[2], row[4]) for row in rows))


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


def _row(item: Staged, n: int) -> dict[str, Any]:
    """The columns of one staged event, by name, and its place `n` in the append."""
    meta = item.metadata
    return {
        "id": item.event_id,
        "stream_type": item.aggregate.TYPE,
        "stream_id": item.aggregate.id,
        "version": item.version,
        "type": item.event.TYPE,
        "schema_version": item.event.SCHEMA_VERSION,
        "payload": item.event.to_wire(),
        "metadata": meta,
        "correlation_id": _uuid_or_none(meta.get("correlation_id")),
        "causation_id": _uuid_or_none(meta.get("causation_id")),
        "command_id": _uuid_or_none(meta.get("command_id")),
        "recorded_at": item.recorded_at,
        "n": n,
    }


def _moved(aggregate_type: str, aggregate_id: UUID, version: int) -> ConcurrencyError:
    return ConcurrencyError(
        f"Stream {aggregate_type}/{aggregate_id} moved past version {version}.",
        details={"stream_type": aggregate_type, "stream_id": str(aggregate_id), "expected_version": version},
    )


@functools.cache
def _load_sql(n: int) -> str:
    """load_many's query for `n` keys: snapshot rows (flag true; the newest per stream),
    then event rows (flag false) after each stream's newest snapshot, in stream order."""
    keys = ", ".join(["(%s::text, %s::uuid)"] * n)
    return (
        f"WITH k(t, i) AS (VALUES {keys}),"
        " s AS (SELECT DISTINCT ON (sn.stream_id, sn.stream_type) sn.stream_type, sn.stream_id,"
        f" sn.version, sn.schema_version, sn.state FROM {_SNAPSHOTS} sn"
        " JOIN k ON sn.stream_id = k.i AND sn.stream_type = k.t"
        " ORDER BY sn.stream_id, sn.stream_type, sn.version DESC)"
        " SELECT true AS snapshot, s.stream_type, s.stream_id, NULL::text AS type, s.schema_version,"
        " s.state AS body, s.version FROM s"
        " UNION ALL"
        " SELECT false, e.stream_type, e.stream_id, e.type, e.schema_version, e.payload, e.version"
        f" FROM k LEFT JOIN s ON s.stream_id = k.i AND s.stream_type = k.t JOIN {_EVENTS} e"
        " ON e.stream_id = k.i AND e.stream_type = k.t AND e.version > coalesce(s.version, 0)"
        " ORDER BY snapshot DESC, stream_id, stream_type, version"
    )


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
        """Several aggregates in one query: each stream's newest snapshot and the events
        after it (after version 0 where there is none).

        Keys are (aggregate type, id). Used by the command batch; `load` is the same for one.
        """
        if not wanted:
            return {}
        keys = list(wanted)
        found: dict[tuple[str, UUID], Aggregate] = {}
        keyring = Keyring(self.registry)
        # Prepared (intent_project/db/pipeline.py), one text per number of keys: parsing and
        # planning it anew cost the server as much as running it.
        rows = pipeline.fetch(_load_sql(len(keys)), [part for key in keys for part in key])
        snapshots = [row for row in rows if row[0]]
        events = [(*row[1:4], row[4], _json(row[5]), row[6]) for row in rows if not row[0]]
        keyring.prefetch("state", ((row[1], _json(row[5])) for row in snapshots))
        keyring.prefetch("event", ((row[2], row[4]) for row in events))
        read_after: dict[tuple[str, UUID], int] = {}  # the version the query read events after
        for _, stream_type, stream_id, _, schema_version, state, version in snapshots:
            key = (stream_type, stream_id)
            cls = wanted[key]
            read_after[key] = version
            restored = self._restore(cls, stream_id, version, schema_version, state, keyring)
            # The newest snapshot is unusable: let the one-by-one path try older ones.
            found[key] = restored or self._from_snapshot(cls, stream_id) or cls(id=stream_id)
        for key in keys:
            if key not in found:
                found[key] = wanted[key](id=key[1])
        # Restored from an older snapshot than the query read after (or from none): these
        # need the events before that one too, one more query below.
        behind = {
            key: aggregate for key, aggregate in found.items() if aggregate.version < read_after.get(key, 0)
        }
        for stream_type, stream_id, type_name, schema_version, payload, version in events:
            key = (stream_type, stream_id)
            if key in behind:
                continue
            payload = keyring.reveal("event", type_name, payload)
            found[key].evolve(self.registry.parse_event(type_name, schema_version, payload), version)
        if behind:
            self._evolve_to_head(behind, keyring)
        return found

    def _evolve_to_head(self, aggregates: Mapping[tuple[str, UUID], Aggregate], keyring: Keyring) -> None:
        """Apply to each aggregate the events of its stream after its version: one query."""
        keys = list(aggregates)
        rows = pipeline.fetch(
            f"SELECT e.stream_type, e.stream_id, e.type, e.schema_version, e.payload, e.version FROM {_EVENTS} e"
            f" JOIN (VALUES {', '.join(['(%s::text, %s::uuid, %s::int)'] * len(keys))}) AS k(t, i, v)"
            " ON e.stream_id = k.i AND e.stream_type = k.t AND e.version > k.v"
            " ORDER BY e.stream_id, e.stream_type, e.version",
            [part for key in keys for part in (key[0], key[1], aggregates[key].version)],
        )
        events = [(*row[:4], _json(row[4]), row[5]) for row in rows]
        keyring.prefetch("event", ((row[2], row[4]) for row in events))
        for stream_type, stream_id, type_name, schema_version, payload, version in events:
            payload = keyring.reveal("event", type_name, payload)
            event = self.registry.parse_event(type_name, schema_version, payload)
            aggregates[(stream_type, stream_id)].evolve(event, version)

    def refresh(self, aggregate: Aggregate) -> bool:
        """After append() lost a race: bring `aggregate` to its stream's head in the same
        transaction, one query. The lost append took the tenant's append lock (it is sent
        with the guarded INSERT, which inserted nothing), so the head read now stays the head
        until commit, and an append decided on it cannot lose again. False when the
        transaction cannot go on (an error aborted it): the caller retries it whole."""
        raw = connection.connection
        if raw is None or raw.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
            return False
        self._evolve_to_head({(aggregate.TYPE, aggregate.id): aggregate}, Keyring(self.registry))
        return True

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
        keyring = Keyring(self.registry)
        for version, schema_version, state in snapshots:
            aggregate = self._restore(aggregate_cls, aggregate_id, version, schema_version, state, keyring)
            if aggregate is not None:
                return aggregate
        return None

    def _restore(
        self,
        aggregate_cls: type[A],
        aggregate_id: UUID,
        version: int,
        schema_version: int,
        state: Any,
        keyring: Keyring,
    ) -> A | None:
        """One snapshot as an aggregate, upcast if needed; None when it cannot be used.

        A snapshot is only a cache: one that cannot be upcast or no longer fits the fields
        is skipped (an older one, or the whole stream, is used instead)."""
        try:
            state = keyring.reveal("state", aggregate_cls.TYPE, _json(state))
            upcast = self.registry.upcast_snapshot(aggregate_cls, schema_version, state)
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
        keys = Keyring(self.registry)
        positions = self._insert(staged, keys, lock=not lock_held, expect=(aggregate, expected))
        for item in staged:
            aggregate.evolve(item.event, item.version)
        self._snapshot([(aggregate, expected)], keys)
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
        keys = Keyring(self.registry)
        positions = self._insert(staged, keys, lock=False, expect=None)
        # Each aggregate's version before the batch (its first staged row's, less one), to
        # take the snapshots whose threshold the batch crossed.
        before: dict[int, tuple[Aggregate, int]] = {}
        for item in staged:
            before.setdefault(id(item.aggregate), (item.aggregate, item.version - 1))
        self._snapshot(list(before.values()), keys)
        return _recorded(staged, positions)

    def _insert(
        self,
        staged: Sequence[Staged],
        keys: Keyring,
        *,
        lock: bool,
        expect: tuple[Aggregate, int] | None,
    ) -> list[int]:
        """Insert staged rows in one statement; with `lock`, take the append lock in the
        same round trip; with `expect` (aggregate, version), insert only if that stream is
        still at that version (raise ConcurrencyError, without aborting, if not)."""
        rows = [_row(item, n) for n, item in enumerate(staged, start=1)]
        if self.registry.personal_events:
            # Personal data is sealed on its way in (events_app/personal.py); a subject
            # erased refuses new personal data here, before anything is written.
            sealed = keys.seal_all("event", [(row["type"], row["payload"], row["stream_id"]) for row in rows])
            for row, payload in zip(rows, sealed, strict=True):
                row["payload"] = payload
        source, params = _APPENDED.values(rows) if len(rows) <= VALUES_UP_TO else _APPENDED.recordset(rows)
        guard = ""
        if expect is not None:
            guarded, version = expect
            guard = (
                f" WHERE (SELECT coalesce(max(e.version), 0) FROM {_EVENTS} AS e"
                " WHERE e.stream_id = %s AND e.stream_type = %s) = %s"
            )
            params += [guarded.id, guarded.TYPE, version]
        columns = _APPENDED.names()
        # ORDER BY n keeps positions in staging order; RETURNING reports them in that order.
        insert = f"INSERT INTO {_EVENTS} ({columns}) SELECT {columns} FROM {source}{guard} ORDER BY n RETURNING position"
        positions = self._run_insert(insert, params, lock=lock, first=staged[0])
        if expect is not None and not positions:
            raise _moved(expect[0].TYPE, expect[0].id, expect[1])
        return positions

    def _run_insert(self, insert: str, params: list[Any], *, lock: bool, first: Staged) -> list[int]:
        # The append's announcement goes in the same round trip: `events` for live streams
        # and the sweep's mark (the projections are behind until they catch up). The INSERT
        # and the announcement are prepared statements (intent_project/db/pipeline.py):
        # parsing and planning the INSERT anew cost the server more than running it.
        announcement = announcements.statement(current_schema(), [APPENDED_KEY], mark=True)
        # See lock_for_append. Sent ahead of the INSERT: the INSERT's snapshot (READ
        # COMMITTED, taken once the lock is granted) sees every earlier append.
        statements: list[pipeline.Statement] = [(_LOCK, None)] if lock else []
        statements += [(insert, params), announcement]
        try:
            rows = pipeline.send(statements, rows_of=len(statements) - 2)
            return [position for (position,) in rows]
        except IntegrityError as exc:
            # A unique violation here is the (stream, version) guard: the only other unique
            # column is the random event id. The name check keeps the message precise.
            if _VERSION_CONSTRAINT in str(exc) or getattr(exc.__cause__, "sqlstate", None) == "23505":
                raise _moved(first.aggregate.TYPE, first.aggregate.id, first.version - 1) from exc
            raise

    def _snapshot(self, crossed: Sequence[tuple[Aggregate, int]], keys: Keyring) -> None:
        """Snapshot each (aggregate, its version before this append) whose append crossed
        its snapshot threshold: one INSERT for all of them, their personal data sealed with
        the append's keyring (keys it already holds are not asked for again)."""
        due = [aggregate for aggregate, previous in crossed if self._crossed(aggregate, previous)]
        if not due:
            return
        states = keys.seal_all(
            "state", [(aggregate.TYPE, aggregate.snapshot_state(), aggregate.id) for aggregate in due]
        )
        # Same transaction as the events that crossed the threshold: never a snapshot of
        # state whose events were rolled back.
        source, params = _SNAPSHOTTED.values(
            [
                {
                    "stream_type": aggregate.TYPE,
                    "stream_id": aggregate.id,
                    "version": aggregate.version,
                    "schema_version": aggregate.SNAPSHOT_SCHEMA_VERSION,
                    "state": state,
                }
                for aggregate, state in zip(due, states, strict=True)
            ]
        )
        columns = _SNAPSHOTTED.names()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_SNAPSHOTS} ({columns}) SELECT {columns} FROM {source} ON CONFLICT DO NOTHING",
                params,
            )

    def _crossed(self, aggregate: Aggregate, previous_version: int) -> bool:
        every = snapshot_interval(type(aggregate)) if self.snapshot_every is None else self.snapshot_every
        return every > 0 and previous_version // every != aggregate.version // every

    def read_stream(self, aggregate_type: str, aggregate_id: UUID) -> list[Recorded[DomainEvent]]:
        rows = list(
            Event.objects.filter(stream_id=aggregate_id, stream_type=aggregate_type)
            .order_by("version")
            .values_list(*RECORD_FIELDS)
        )
        keys = prefetch_keys(rows, self.registry)
        return [recorded_from_values(row, self.registry, keys) for row in rows]
