"""Handling stored commands: lock them, decide, append, record the outcome.

Runs inside `schema_context(schema)` (see tasks.py). Every outcome is written to the
command row, so a re-delivered message finds the command no longer pending and does
nothing: a command is executed at most once. The decision itself is
`commands_app.domain.store.decide`, the function the in-memory flow of the unit tests
runs too; when to try again is `intent_project.retries`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.errors import ConcurrencyError, IntentError, RetryableDomainError
from commands_app.domain.messages import CommandContext, CommandMetadata, DomainCommand, DomainEvent, Recorded
from commands_app.domain.personal import SubjectErased
from commands_app.domain.registry import Registry
from commands_app.domain.store import decide
from commands_app.models import FINAL_STATUSES, Command, CommandStatus
from commands_app.registry import get_registry
from events_app.personal import Keyring
from events_app.store import PostgresEventStore, Staged
from intent_project import announcements, lifecycle, retries, tracing, wakeups
from intent_project.db import pipeline
from intent_project.rowsets import Columns
from intent_project.tenancy import current_schema

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What one delivery did to a command (logged by the tasks, asserted by tests)."""

    CONSUMED = "consumed"  # its events are appended; projections have yet to apply them
    PROCESSED = "processed"  # final, with nothing for a projection to wait for
    FAILED = "failed"  # final: a domain error, or retries exhausted
    # A redundant delivery, which did nothing:
    ALREADY_CONSUMED = "already-consumed"
    ALREADY_PROCESSED = "already-processed"
    ALREADY_FAILED = "already-failed"
    LOCKED_OR_MISSING = "locked-or-missing"  # another delivery holds it, or no such command


_ALREADY = {
    CommandStatus.CONSUMED: Outcome.ALREADY_CONSUMED,
    CommandStatus.PROCESSED: Outcome.ALREADY_PROCESSED,
    CommandStatus.FAILED: Outcome.ALREADY_FAILED,
}


@dataclass(frozen=True)
class Postponed:
    """The command stays pending, to be tried again in `delay` seconds."""

    delay: float


Result = Outcome | Postponed


def context_for(row: Command) -> CommandContext:
    return CommandMetadata.from_json(row.metadata).context(row.id, row.correlation_id, timezone.now())


def _result(recorded: list[Recorded[DomainEvent]]) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": str(rec.id),
                "type": rec.type,
                "position": rec.position,
                "aggregate_type": rec.stream_type,
                "aggregate_id": str(rec.stream_id),
                "version": rec.version,
            }
            for rec in recorded
        ],
        "aggregate_version": recorded[-1].version if recorded else None,
    }


def process(command_id: UUID) -> Result:
    """Handle this one command. Returns what happened, for logs and tests."""
    return process_batch(command_id, limit=1)[command_id]


def process_batch(first_id: UUID | None, limit: int | None = None) -> dict[UUID, Result]:
    """Handle `first_id` (when given) and other due pending commands of this tenant, up to
    `limit` in all, in one transaction: one append lock, one commit and one projection
    wake-up for the lot.

    Each command gets exactly its own outcome; a bad one (a bug in a handler, a version
    race) is isolated by redoing the batch one savepoint per command. Commands are locked
    with SKIP LOCKED, so concurrent batches never share one, and a command's own message
    arriving later finds it no longer pending and does nothing: "executed at most once"
    rests on the row lock and the status alone.
    """
    limit = settings.COMMAND_BATCH_SIZE if limit is None else limit
    registry = get_registry()
    with transaction.atomic():
        now = timezone.now()
        rows: list[Command] = []
        if first_id is not None:
            first = _lock_first(first_id, now)
            if not isinstance(first, Command):
                return {first_id: first}
            rows.append(first)
        rows += _lock_due(limit - len(rows), now, exclude=first_id)
        if not rows:
            return {}
        started = time.monotonic()
        batch = _Batch(registry, PostgresEventStore(registry))
        outcomes = batch.run(rows)
        _save_outcomes(rows)
        handled = functools.partial(lifecycle.commands_handled, rows, seconds=time.monotonic() - started)
        transaction.on_commit(handled)
        if batch.appended:
            # Bind the schema now: inside on_commit the connection may be public.
            announce = batch.read_side.events_appended
            transaction.on_commit(functools.partial(announce, current_schema(), frozenset(batch.appended)))
    return outcomes


def _lock_first(command_id: UUID, now: datetime) -> Command | Result:
    """The command a message is about, locked, or what to answer when it is not due."""
    # SKIP LOCKED: a second delivery of the same message while the first is still running
    # must not wait and then re-execute; it just leaves.
    row = Command.objects.select_for_update(skip_locked=True).filter(pk=command_id).first()
    if row is None:
        return Outcome.LOCKED_OR_MISSING
    if row.status != CommandStatus.PENDING:
        return _ALREADY[CommandStatus(row.status)]
    if row.not_before and row.not_before > now:
        return Postponed((row.not_before - now).total_seconds())
    return row


def _lock_due(count: int, now: datetime, *, exclude: UUID | None) -> list[Command]:
    """Up to `count` other due pending commands, oldest first, locked (SKIP LOCKED:
    a concurrent batch has taken those it holds)."""
    if count <= 0:
        return []
    due = (
        Command.objects.select_for_update(skip_locked=True)
        .filter(status=CommandStatus.PENDING)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
    )
    if exclude is not None:
        due = due.exclude(pk=exclude)
    return list(due.order_by("created_at")[:count])


# What a batch writes back to each command row, in one UPDATE.
_OUTCOME = Columns.of(
    Command,
    [
        "id",
        "attempts",
        "result",
        "error",
        "status",
        "last_position",
        "awaiting_projections",
        "processed_at",
        "not_before",
        "updated_at",
    ],
)


def _save_outcomes(rows: list[Command]) -> None:
    """Write every row's outcome in one UPDATE, the rows sent as one JSON document, and
    announce the ones now final to waiting requests (and the ones consumed, as
    'consumed:<id>', to live streams: intent_project.notifications) in the same round
    trip and transaction, so both commit together.

    The keys come from the rows in hand (every one is locked, so every one is updated);
    the announcement is a statement of its own, naming no tenant table, so that under
    Citus it runs on the coordinator where the listeners are (announcements.py).

    Django's bulk_update builds a CASE per field and row, and a VALUES list of hundreds of
    placeholders is parsed client-side by the driver: both cost more than the commands.
    """
    q = connection.ops.quote_name
    source, params = _OUTCOME.recordset([_OUTCOME.row_of(row) for row in rows])
    assignments = ", ".join(
        f"{q(column)} = u.{q(column)}" for column, _ in _OUTCOME.columns if column != "id"
    )
    update = f"UPDATE {q(Command._meta.db_table)} AS c SET {assignments} FROM {source} WHERE c.id = u.id"
    # Prepared (intent_project/db/pipeline.py): the statement's text is the same for every
    # batch, the rows being its one parameter.
    pipeline.send([(update, params), announcements.statement(current_schema(), _final_keys(rows))])


def _final_keys(rows: list[Command]) -> list[str]:
    """The notification keys of the rows' outcomes: '<id>' for a final command (its
    waiters), 'consumed:<id>' for a consumed one (live streams); none for one postponed."""
    keys = []
    for row in rows:
        if row.status == CommandStatus.CONSUMED:
            keys.append(f"consumed:{row.id}")
        elif row.status in FINAL_STATUSES:
            keys.append(str(row.id))
    return keys


@dataclass(frozen=True)
class _Job:
    """A locked command row, parsed: what to decide, on which aggregate."""

    row: Command
    command: DomainCommand
    ctx: CommandContext
    key: tuple[str, UUID]
    aggregate_cls: type[Aggregate]


class _SlowPath(Exception):
    """The one-statement path cannot finish this batch; take the one-by-one path."""


class _Batch:
    """The commands of one transaction, with the aggregates they loaded.

    `_all_at_once` is the fast path: every aggregate of the batch loaded in two queries,
    every decision made in memory (later commands on an aggregate see the events of
    earlier ones, as the append lock guarantees nobody else appends meanwhile), and all
    their events written in one INSERT. `_one` is the one-by-one path.
    """

    def __init__(self, registry: Registry, store: PostgresEventStore) -> None:
        self.registry = registry
        self.store = store
        self.read_side = wakeups.read_side()
        self.aggregates: dict[tuple[str, UUID], Aggregate] = {}
        self.appended: set[str] = set()  # the types of the events appended

    def run(self, rows: list[Command]) -> dict[UUID, Result]:
        """Decide and append for locked rows; each outcome is also written onto its row."""
        # Lock before loading anything: every aggregate loaded below is then its stream's
        # head until this transaction commits, so decisions never race another writer in
        # this tenant and an aggregate can be reused across the batch.
        self.store.lock_for_append()
        keys = Keyring(self.registry).prefetch("command", ((row.type, row.payload) for row in rows))
        jobs = {row.id: self._job(row, keys) for row in rows}
        try:
            with transaction.atomic():  # one savepoint: the fast path rolls back as a whole
                return self._all_at_once(rows, jobs)
        except _SlowPath as slow:
            # A bug in a handler, or a version race with a writer that skips the append
            # lock: redo the batch one savepoint per command, so only that command suffers.
            log.info("command batch falls back to one-by-one: %s", slow)
            self.aggregates.clear()
            return {row.id: self._one(row, jobs[row.id]) for row in rows}

    def _job(self, row: Command, keys: Keyring) -> _Job | IntentError:
        try:
            command = self.registry.parse_command(row.type, keys.reveal("command", row.type, row.payload))
        except IntentError as exc:  # stored before its type or schema changed
            return exc
        ctx = context_for(row)
        key = (command.AGGREGATE_TYPE, command.aggregate_id(ctx))
        return _Job(row, command, ctx, key, self.registry.aggregate_for(command))

    def _all_at_once(self, rows: list[Command], jobs: dict[UUID, _Job | IntentError]) -> dict[UUID, Result]:
        parsed = [job for job in jobs.values() if isinstance(job, _Job)]
        aggregates = self.store.load_many({job.key: job.aggregate_cls for job in parsed})
        refused = {row_id: job for row_id, job in jobs.items() if isinstance(job, IntentError)}
        staged_of: dict[UUID, list[Staged]] = {}
        for job in parsed:
            aggregate = aggregates[job.key]
            try:
                with _command_span(job):
                    decision = decide(self.registry, aggregate, job.command, job.ctx)
                    if isinstance(decision, IntentError):
                        refused[job.row.id] = decision
                        continue
                    staged_of[job.row.id] = staged = self.store.stage(
                        aggregate, decision.events, _traced(decision.metadata)
                    )
                for item in staged:
                    aggregate.evolve(item.event, item.version)
            except DatabaseError:
                raise
            except Exception as exc:
                raise _SlowPath(f"command {job.row.id} raised {exc!r}") from exc
        try:
            every = [item for staged in staged_of.values() for item in staged]
            with tracing.span("append", attributes={"intent.events": len(every)}):
                written = self.store.write_staged(every)
        except (ConcurrencyError, SubjectErased) as exc:
            # An erased subject refuses new personal data: one by one, only that command fails.
            raise _SlowPath(str(exc)) from exc
        recorded = {rec.id: rec for rec in written}
        return {
            row.id: self._refused(row, refused[row.id])
            if row.id in refused
            else self._done(row, [recorded[item.event_id] for item in staged_of[row.id]])
            for row in rows
        }

    def _one(self, row: Command, job: _Job | IntentError) -> Result:
        """Decide and append for one row in its own savepoint."""
        if isinstance(job, IntentError):
            return self._refused(row, job)
        try:
            return self._decide_and_append(job)
        except DatabaseError:
            raise  # the database went away: the whole batch rolls back, nothing happened
        except Exception as exc:
            # A bug outside the domain's errors: its savepoint rolled back whatever it did;
            # retry with backoff so it ends `failed` with the cause, not pending forever.
            self.aggregates.clear()
            log.warning("command %s raised %r", row.id, exc, exc_info=True)
            return _retry_or_fail(row, _unexpected(exc))

    def _decide_and_append(self, job: _Job) -> Result:
        for attempt in range(settings.COMMAND_CONFLICT_RETRIES):
            try:
                # This command alone rolls back on failure.
                with _command_span(job), transaction.atomic():
                    aggregate = self.aggregates.get(job.key)
                    if aggregate is None:
                        aggregate = self.store.load(job.aggregate_cls, job.key[1])
                    decision = decide(self.registry, aggregate, job.command, job.ctx)
                    if isinstance(decision, IntentError):
                        return self._refused(job.row, decision)
                    with tracing.span("append", attributes={"intent.events": len(decision.events)}):
                        recorded = (
                            self.store.append(
                                aggregate, decision.events, _traced(decision.metadata), lock_held=True
                            )
                            if decision.events
                            else []
                        )
                self.aggregates[job.key] = aggregate
                return self._done(job.row, recorded)
            except SubjectErased as exc:
                self.aggregates.pop(job.key, None)  # it evolved before the append refused
                return self._refused(job.row, exc)
            except ConcurrencyError:
                # Only a writer that skips the append lock can cause this; reload.
                self.aggregates.pop(job.key, None)
                lifecycle.conflict_redecided(job.row.id, attempt=attempt + 1)
        conflict = ConcurrencyError(
            f"Still conflicting after {settings.COMMAND_CONFLICT_RETRIES} re-decisions.",
            details={"conflict_retries": settings.COMMAND_CONFLICT_RETRIES},
        )
        return self._refused(job.row, conflict)

    def _refused(self, row: Command, exc: IntentError) -> Result:
        """A domain error fails the command; "not now" (retryable, or a race lost every
        time) schedules another attempt."""
        if isinstance(exc, RetryableDomainError | ConcurrencyError):
            return _retry_or_fail(row, exc)
        row.attempts += 1
        _mark_failed(row, exc.as_dict())
        return Outcome.FAILED

    def _done(self, row: Command, recorded: list[Recorded[DomainEvent]]) -> Outcome:
        types = {rec.type for rec in recorded}
        awaiting = self.read_side.awaiting(types) if recorded else frozenset()
        self.appended |= types
        row.attempts += 1
        row.result = _result(recorded)
        row.error = None
        if awaiting:
            row.status = CommandStatus.CONSUMED
            row.last_position = recorded[-1].position
            row.awaiting_projections = sorted(awaiting)
            return Outcome.CONSUMED
        row.status = CommandStatus.PROCESSED
        row.processed_at = timezone.now()
        return Outcome.PROCESSED


def _command_span(job: _Job) -> contextlib.AbstractContextManager[Any]:
    """The command's span: a child of the span that stored it (its metadata's trace), so
    the flow stays one trace, linked to the task that handled it."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    return tracing.span(
        f"command {job.row.type}",
        parent=CommandMetadata.from_json(job.row.metadata).trace,
        links=[tracing.carrier()],  # the drain (a Celery task span) that ran it
        attributes={
            "intent.command_id": job.row.id,
            "intent.correlation_id": job.ctx.correlation_id,
            "intent.causation_id": job.ctx.causation_id,
        },
    )


def _traced(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """Event metadata with the current (the command's) trace context, for sagas to continue."""
    context = tracing.carrier()
    return {**metadata, "trace": context} if context else metadata


def _unexpected(exc: BaseException) -> IntentError:
    code = "infrastructure_error" if isinstance(exc, DatabaseError) else "unexpected_error"
    return IntentError(f"{type(exc).__name__}: {exc}"[:500], code=code)


def _retry_or_fail(row: Command, exc: IntentError) -> Result:
    """Count the failed attempt on a locked row; schedule the next one, or fail it."""
    row.attempts += 1
    delay = retries.commands().delay_after(row.attempts)
    if delay is None:
        error = exc.as_dict()
        error["details"] = {**error["details"], "attempts": row.attempts, "retries_exhausted": True}
        _mark_failed(row, error)
        return Outcome.FAILED
    row.not_before = timezone.now() + timedelta(seconds=delay)
    row.error = {**exc.as_dict(), "retrying": True}
    return Postponed(delay)


def _mark_failed(row: Command, error: dict[str, Any]) -> None:
    row.status = CommandStatus.FAILED
    row.error = error
    row.processed_at = timezone.now()


def drain(max_seconds: float = 2.0) -> tuple[dict[UUID, Result], bool]:
    """Handle due pending commands of this tenant batch after batch, for up to
    `max_seconds`. Returns the outcomes, and whether it stopped with work possibly left
    (the caller then yields the worker and asks for another run)."""
    deadline = time.monotonic() + max_seconds
    outcomes: dict[UUID, Result] = {}
    while True:
        batch = process_batch(None)
        outcomes.update(batch)
        if len(batch) < settings.COMMAND_BATCH_SIZE:
            return outcomes, False
        if time.monotonic() >= deadline:
            return outcomes, True


def record_infrastructure_failure(command_id: UUID, exc: BaseException) -> Result:
    """An exception escaped a whole batch (the database went away): nothing of it was
    committed. Count the attempt on the command whose message this was; retry with backoff."""
    with transaction.atomic():
        row = Command.objects.select_for_update().filter(pk=command_id).first()
        if row is None:
            return Outcome.LOCKED_OR_MISSING
        if row.status != CommandStatus.PENDING:
            return _ALREADY[CommandStatus(row.status)]
        outcome = _retry_or_fail(row, _unexpected(exc))
        row.save(update_fields=["attempts", "not_before", "error", "status", "processed_at", "updated_at"])
    return outcome
