"""The projection runner: read events after a checkpoint, apply, advance, in one transaction.

Correctness rests on three things:
- the read-model writes and the checkpoint commit together, so a crash anywhere leaves
  either both or neither (an event is applied exactly once in effect);
- one runner per projection at a time (row lock, SKIP LOCKED), so events apply in order;
- position order equals commit order (see events_app.store), so reading "after the
  checkpoint, up to the head seen at the start" never skips a late commit.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from commands_app.domain.messages import DomainEvent, Recorded
from commands_app.models import Command, CommandStatus
from commands_app.registry import get_registry
from events_app.models import Event
from events_app.store import RECORD_FIELDS as _RECORD_FIELDS
from events_app.store import prefetch_keys, recorded_from_values
from intent_project import announcements, jsoncodec, lifecycle, notifications, retries, tracing
from intent_project.db import pipeline
from intent_project.rowsets import ByPrimaryKey, Columns
from intent_project.tenancy import current_schema
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.projectors.base import HandlerFailed, Projection
from projections_app.registry import get_consumers, get_projections, get_sagas

log = logging.getLogger(__name__)

# A batch reads at most batch_size events from a window of batch_size * this positions.
_WINDOW_FACTOR = 8
# A batch span links the flows of its first events, not of thousands in a catch-up.
_TRACE_LINKS = 32


class RunOutcome(StrEnum):
    """What one run of a consumer did."""

    CAUGHT_UP = "caught-up"  # at the head
    PROGRESS = "progress"  # applied a batch, more to do
    BUSY = "busy"  # another runner holds the checkpoint (or it has no row yet)
    STALLED = "stalled"  # stopped at a failing event until an operator acts
    WAITING = "waiting"  # backing off after a failure
    FAILED = "failed"  # a handler failed; retried later (see intent_project.retries)


@dataclass(frozen=True)
class RunResult:
    name: str
    applied: int
    caught_up: bool
    outcome: RunOutcome
    advanced: bool = False  # the checkpoint moved


_CHECKPOINTS = Columns.all_of(ProjectionState)


def ensure_checkpoints(schema_name: str | None = None) -> None:
    """Create the checkpoint row of every registered projection that has none yet."""

    def _ensure() -> None:
        # A new checkpoint starts at 0: the read model will be built by this very code.
        sql, params = _CHECKPOINTS.insert(
            [
                ProjectionState(name=p.name, version=p.version, fingerprint=p.fingerprint)
                for p in get_consumers()
            ],
            ignore_conflicts=True,
        )
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING name", params)
            created = cursor.fetchall()
        if created:  # a consumer with its events all ahead: the sweep follows it until done
            announcements.announce(current_schema(), mark=True)

    if schema_name is None:
        _ensure()
    else:
        with schema_context(schema_name):
            _ensure()


def head_position() -> int:
    with connection.cursor() as cursor:  # raw: the ORM's aggregate compiled longer than it ran
        cursor.execute(f"SELECT max(position) FROM {Event._meta.db_table}")
        return int(cursor.fetchone()[0] or 0)


def run_projection(
    projection: Projection, batch_size: int | None = None, upto: int | None = None
) -> RunResult:
    """Apply one batch of events to one projection (never past `upto` when given)."""
    batch_size = batch_size or settings.PROJECTION_BATCH_SIZE
    try:
        with transaction.atomic():
            state = _lock_checkpoint(projection)
            if isinstance(state, RunOutcome):
                return RunResult(projection.name, 0, False, state)
            # Read the head first: every event at or below it committed before this
            # statement ran, because positions are handed out in commit order.
            head = head_position() if upto is None else min(head_position(), upto)
            if head <= state.position:
                return RunResult(projection.name, 0, True, RunOutcome.CAUGHT_UP)
            # Read a window of positions, not everything up to the head: the (type,
            # position) index returns a consumer's events type by type, so "the first N in
            # position order" would sort the whole remaining log on every batch (quadratic
            # catch-up). A window bounds that sort; a sparse consumer simply moves on.
            upper = min(head, state.position + batch_size * _WINDOW_FACTOR)
            started = time.monotonic()
            rows = _events_between(projection, state.position, upper, batch_size)
            _apply(projection, _parsed(rows))
            state.position = rows[-1][1] if len(rows) == batch_size else upper
            state.failures, state.last_error, state.retry_at = 0, None, None
            state.save_progress()
            logged = functools.partial(lifecycle.projection_batch, projection.name, events=len(rows))
            transaction.on_commit(
                functools.partial(logged, position=state.position, seconds=time.monotonic() - started)
            )
        more = state.position < head
        outcome = RunOutcome.PROGRESS if more else RunOutcome.CAUGHT_UP
        return RunResult(projection.name, len(rows), not more, outcome, advanced=True)
    except (OperationalError, InterfaceError):
        # The database went away: not the event's fault, so it must not count towards
        # stalling the projection. Nothing was committed; the next run starts over.
        raise
    except HandlerFailed as failed:
        _record_failure(projection, _row_of(failed.recorded), failed.cause)
    except _Unreadable as unreadable:
        _record_failure(projection, unreadable.row, unreadable.cause)
    except Exception as exc:  # a failing handler must never silently lose its event
        _record_failure(projection, None, exc)
    return RunResult(projection.name, 0, False, RunOutcome.FAILED)


def _apply(projection: Projection, records: list[Recorded[DomainEvent]]) -> None:
    """One batch, in a span linked to the flows of (the first of) its events."""
    with tracing.span(
        f"projection {projection.name}",
        links=[rec.metadata["trace"] for rec in records[:_TRACE_LINKS] if rec.metadata.get("trace")],
        attributes={"intent.projection": projection.name, "intent.events": len(records)},
    ):
        projection.apply_batch(records)


# A checkpoint by name, locked for the batch (a prepared statement: every batch locks one).
_LOCKED = ByPrimaryKey(ProjectionState, lock="FOR UPDATE SKIP LOCKED")


def _lock_checkpoint(projection: Projection) -> ProjectionState | RunOutcome:
    """The projection's checkpoint, locked, or why this run does nothing."""
    # SKIP LOCKED: one runner per projection at a time, so events apply in order.
    state = _LOCKED.get(projection.name)
    if state is None:
        # Either another runner holds it (it will do the work) or it has no row yet.
        if not ProjectionState.objects.filter(name=projection.name).exists():
            ensure_checkpoints()
        return RunOutcome.BUSY
    if state.status == ProjectionStatus.STALLED:
        return RunOutcome.STALLED
    if state.retry_at and state.retry_at > timezone.now():
        return RunOutcome.WAITING
    return state


def _events_between(projection: Projection, after: int, upto: int, limit: int) -> list[tuple[Any, ...]]:
    """The projection's events in (after, upto], at most `limit`, as RECORD_FIELDS tuples."""
    query = (
        Event.objects.filter(projection.event_filter())
        .filter(position__gt=after, position__lte=upto)
        # Events an operator skipped into a dead letter stay skipped.
        .exclude(
            id__in=DeadLetter.objects.filter(projection=projection.name, replayed_at__isnull=True).values(
                "event_id"
            )
        )
        .order_by("position")
        .values_list(*_RECORD_FIELDS)[:limit]
    )
    # The ORM builds the statement; the rows are read without it. Per row, its converters
    # (JSON through the field, timestamps through Django's pure-Python loader) cost more
    # than the query: prepared, psycopg's C timestamp loader, the JSON parsed here.
    sql, params = query.query.sql_with_params()
    loads = jsoncodec.loads
    return [
        (*row[:4], loads(row[4]), *row[5:8], row[8].replace(tzinfo=UTC), loads(row[9]))
        for row in pipeline.fetch(sql, params, c_timestamps=True)
    ]


# What _events_between converts by position: the JSON columns, and the timestamp.
assert [_RECORD_FIELDS[i] for i in (4, 8, 9)] == ["payload", "recorded_at", "metadata"]


class _Unreadable(Exception):
    """A stored event that no longer parses (or upcasts): it fails like a handler would."""

    def __init__(self, row: Event, cause: Exception) -> None:
        super().__init__(cause)
        self.row = row
        self.cause = cause


def _parsed(rows: list[tuple[Any, ...]]) -> list[Recorded[DomainEvent]]:
    registry = get_registry()
    keys = prefetch_keys(rows, registry)  # the batch's personal-data keys, one query
    records = []
    for row in rows:
        try:
            records.append(recorded_from_values(row, registry, keys))
        except Exception as exc:
            raise _Unreadable(Event(id=row[0], position=row[1], type=row[2]), exc) from exc
    return records


def _row_of(recorded: Any) -> Event:
    return Event(id=recorded.id, position=recorded.position, type=recorded.type)


def _record_failure(projection: Projection, row: Event | None, exc: Exception) -> None:
    error: dict[str, Any] = {
        "code": "projection_handler_failed",
        "message": f"{type(exc).__name__}: {exc}"[:1000],
        "details": {},
    }
    if row is not None:
        error["details"] = {"event_id": str(row.id), "position": row.position, "type": row.type}
    with transaction.atomic():
        state = ProjectionState.objects.select_for_update().get(name=projection.name)
        state.failures += 1
        state.last_error = error
        delay = retries.projections().delay_after(state.failures)
        if delay is None:
            state.status = ProjectionStatus.STALLED
            state.retry_at = None
        else:
            state.retry_at = timezone.now() + timedelta(seconds=delay)
        state.save()
    lifecycle.projection_failed(
        projection.name,
        position=getattr(row, "position", None),
        error=error,
        stalled=state.status == ProjectionStatus.STALLED,
        exc_info=exc,
    )


def settle_commands() -> list[str]:
    """Mark consumed commands processed once every projection they wait for has passed
    them; returns their ids, for the caller to announce to their waiters."""
    command_table = Command._meta.db_table
    state_table = ProjectionState._meta.db_table
    rows = pipeline.fetch(
        f"""
            UPDATE {command_table} AS c
               SET status = %s, processed_at = now(), updated_at = now()
             WHERE c.status = %s
               AND (SELECT count(*) FROM {state_table} AS p
                     WHERE p.name = ANY(c.awaiting_projections) AND p.position >= c.last_position)
                   = cardinality(c.awaiting_projections)
            RETURNING c.id, c.type, c.created_at, c.correlation_id, c.causation_id
            """,
        [CommandStatus.PROCESSED, CommandStatus.CONSUMED],
    )
    settled = [
        Command(id=id_, type=type_, created_at=created, correlation_id=correlation, causation_id=causation)
        for id_, type_, created, correlation, causation in rows
    ]
    if settled:
        transaction.on_commit(functools.partial(lifecycle.commands_settled, settled))
    return [str(row.id) for row in settled]


def run_all(max_batches: int = 4) -> dict[str, RunResult]:
    """Bring every projection and saga of the current schema up to date (bounded work per call).

    Projections first, then the commands they have caught up with are settled (and their
    waiters notified), then sagas: a client waiting for `processed` waits on the read
    models, not on sagas.

    Before any transaction, one look at the head and the checkpoints sorts the consumers:
    those at the head are done, those with none of their events up to the head are moved
    there together (`_fast_forward`), and only the rest run a batch. Most runs touch few
    consumers (a burst of one slice's commands), so this saves most of a run's round trips.
    """
    head = head_position()
    states = {state.name: state for state in ProjectionState.objects.all()}
    results = _run_group(get_projections(), head, states, max_batches)
    settled = settle_commands()
    # One statement per run, after the commits: readers waiting for ?min_position=
    # re-check, and so do the waiters of the commands just settled. It names no tenant
    # table, so under Citus it runs on the coordinator, where the listeners are. A run
    # that dies just before it makes those waits slower (they end at their deadline, as
    # the checkpoints' always did), never wrong: waiters re-read the rows themselves.
    advanced = [notifications.projection_key(name) for name, r in results.items() if r.advanced]
    announcements.announce(current_schema(), [*advanced, *settled])
    results.update(_run_group(get_sagas(), head, states, max_batches))
    return results


def _run_group(
    consumers: tuple[Projection, ...], head: int, states: dict[str, ProjectionState], max_batches: int
) -> dict[str, RunResult]:
    results: dict[str, RunResult] = {}
    behind: dict[Projection, int] = {}  # running consumers short of the head -> checkpoint
    for consumer in consumers:
        state = states.get(consumer.name)
        if state is None or state.status != ProjectionStatus.RUNNING or state.retry_at is not None:
            continue  # the full path creates the row, or reports stalled / waiting
        if state.position >= head:
            results[consumer.name] = RunResult(consumer.name, 0, True, RunOutcome.CAUGHT_UP)
        else:
            behind[consumer] = state.position
    busy = _with_events(behind, head)
    # Consumers with nothing to apply up to the head: name -> checkpoint.
    idle = {consumer.name: after for consumer, after in behind.items() if consumer.name not in busy}
    moved = _fast_forward(idle, head)
    for name in moved:
        results[name] = RunResult(name, 0, True, RunOutcome.CAUGHT_UP, advanced=True)
    for consumer in consumers:
        if consumer.name not in results:
            results[consumer.name] = _catch_up(consumer, max_batches)
    return results


# Up to this many positions between the lowest checkpoint and the head, the run reads that
# stretch of the log once and asks every consumer in Python; past it, a query each.
_PEEK_POSITIONS = 1_000


def _with_events(behind: Mapping[Projection, int], head: int) -> set[str]:
    """The consumers that have at least one event in (their checkpoint, head].

    A live tenant's consumers trail the head by a few events: one read of that stretch
    (type and the metadata the filters use) answers for all of them, where a query per
    consumer cost a round trip and the ORM's compilation each."""
    if not behind:
        return set()
    low = min(behind.values())
    if head - low > _PEEK_POSITIONS:
        return {c.name for c, after in behind.items() if _has_events(c, after, head)}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT position, type, metadata->'seq', metadata->>'command_type' FROM {Event._meta.db_table}"
            " WHERE position > %s AND position <= %s",
            [low, head],
        )
        stretch = [
            (position, type_name, {"seq": jsoncodec.loads(seq) if seq else None, "command_type": command})
            for position, type_name, seq, command in cursor.fetchall()
        ]
    return {
        consumer.name
        for consumer, after in behind.items()
        if any(position > after and consumer.reads(type_name, meta) for position, type_name, meta in stretch)
    }


def _has_events(consumer: Projection, after: int, upto: int) -> bool:
    return bool(
        Event.objects.filter(consumer.event_filter(), position__gt=after, position__lte=upto).exists()
    )


def _fast_forward(idle: dict[str, int], head: int) -> set[str]:
    """Move the checkpoints of consumers that have no event in (checkpoint, head] to head.

    Safe without the consumer's own batch: every position up to the head is committed
    (positions are handed out in commit order), and none of (the checkpoint we read, head]
    is this consumer's. A checkpoint that moved forward meanwhile only narrows that range;
    one that moved back (an operator's rewind, a rebuild's swap) is left alone, as is a
    row another runner holds (it will get there itself) and a stalled or waiting one.
    """
    if not idle:
        return set()
    table = ProjectionState._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS s SET position = %s, updated_at = now()
              FROM (SELECT t.name FROM {table} AS t
                      JOIN unnest(%s::text[], %s::bigint[]) AS checked(name, position)
                        ON checked.name = t.name
                     WHERE t.position >= checked.position AND t.position < %s
                       AND t.status = %s AND t.retry_at IS NULL
                       FOR UPDATE OF t SKIP LOCKED) AS free
             WHERE s.name = free.name
            RETURNING s.name
            """,
            [head, list(idle), list(idle.values()), head, ProjectionStatus.RUNNING],
        )
        return {name for (name,) in cursor.fetchall()}


def _catch_up(consumer: Projection, max_batches: int) -> RunResult:
    result = run_projection(consumer)
    applied, advanced = result.applied, result.advanced
    batches = 1
    while result.outcome == RunOutcome.PROGRESS and batches < max_batches:
        result = run_projection(consumer)
        applied += result.applied
        advanced = advanced or result.advanced
        batches += 1
    return RunResult(consumer.name, applied, result.caught_up, result.outcome, advanced)
