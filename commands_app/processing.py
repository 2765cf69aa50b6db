"""Handling stored commands: lock them, decide, append, record the outcome.

Runs inside `schema_context(schema)` (see tasks.py). Every outcome is written to the
command row, so a re-delivered message finds the command no longer pending and does
nothing: a command is executed at most once.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from commands_app.domain.errors import ConcurrencyError, IntentError, RetryableDomainError
from commands_app.domain.messages import CommandContext, DomainEvent, Recorded
from commands_app.domain.store import event_metadata
from commands_app.models import Command, CommandStatus
from commands_app.registry import get_registry
from events_app.store import PostgresEventStore, Staged
from intent_project import notifications, retries
from intent_project.jsoncodec import ExactJSONEncoder
from intent_project.tenancy import current_schema

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The command stays pending and should be tried again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


def context_for(row: Command) -> CommandContext:
    meta = row.metadata or {}
    causation = meta.get("causation_id")
    return CommandContext(
        command_id=row.id,
        tenant=meta.get("tenant", ""),
        user_id=meta.get("user_id"),
        role=meta.get("role"),
        correlation_id=row.correlation_id or row.id,
        causation_id=UUID(causation) if causation else None,
        now=timezone.now(),
    )


def _result(recorded: list[Recorded[DomainEvent]]) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": str(rec.id),
                "type": rec.type,
                "position": rec.position,
                "stream_type": rec.stream_type,
                "stream_id": str(rec.stream_id),
                "version": rec.version,
            }
            for rec in recorded
        ],
        "aggregate_version": recorded[-1].version if recorded else None,
    }


def process(command_id: UUID) -> str:
    """Handle this one command. Returns what happened, for logs and tests.

    Raises RetryLater when a retryable error or an exhausted conflict loop means "not now".
    """
    outcome = process_batch(command_id, limit=1)[command_id]
    if isinstance(outcome, RetryLater):
        raise outcome
    return outcome


def process_batch(first_id: UUID | None, limit: int | None = None) -> dict[UUID, str | RetryLater]:
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
    store = PostgresEventStore(registry)
    outcomes: dict[UUID, str | RetryLater] = {}
    with transaction.atomic():
        now = timezone.now()
        rows: list[Command] = []
        if first_id is not None:
            # SKIP LOCKED: a second delivery of the same message while the first is still
            # running must not wait and then re-execute; it just leaves.
            first = Command.objects.select_for_update(skip_locked=True).filter(pk=first_id).first()
            if first is None:
                return {first_id: "locked-or-missing"}
            if first.status != CommandStatus.PENDING:
                return {first_id: f"already-{first.status}"}
            if first.not_before and first.not_before > now:
                return {first_id: RetryLater((first.not_before - now).total_seconds())}
            rows.append(first)
        if limit > len(rows):
            due = (
                Command.objects.select_for_update(skip_locked=True)
                .filter(status=CommandStatus.PENDING)
                .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            )
            if first_id is not None:
                due = due.exclude(pk=first_id)
            rows += list(due.order_by("created_at")[: limit - len(rows)])
        if not rows:
            return {}
        # Lock before loading anything: every aggregate loaded below is then its stream's
        # head until this transaction commits, so decisions never race another writer in
        # this tenant and an aggregate can be reused across the batch.
        store.lock_for_append()
        batch = _Batch(registry, store)
        try:
            with transaction.atomic():  # one savepoint: the fast path rolls back as a whole
                outcomes = batch.handle_all(rows)
        except _SlowPath as slow:
            # A bug in a handler, or a version race with a writer that skips the append
            # lock: redo the batch one savepoint per command, so only that command suffers.
            log.info("command batch falls back to one-by-one: %s", slow)
            batch = _Batch(registry, store)
            outcomes = {row.id: batch.handle(row) for row in rows}
        _save_outcomes(rows)
        if batch.appended:
            # Bind the schema now: inside on_commit the connection may be public.
            transaction.on_commit(functools.partial(_wake_projections, current_schema()))
    return outcomes


def _save_outcomes(rows: list[Command]) -> None:
    """Write every row's outcome in one UPDATE, the rows sent as one JSON document, and
    announce the ones now final to waiting requests (intent_project.notifications) in the
    same statement, so both commit together.

    Django's bulk_update builds a CASE per field and row, and a VALUES list of hundreds of
    placeholders is parsed client-side by the driver: both cost more than the commands.
    """
    document = json.dumps(
        [
            {
                "id": row.id,
                "attempts": row.attempts,
                "result": row.result,
                "error": row.error,
                "status": str(row.status),
                "last_position": row.last_position,
                "awaiting": row.awaiting_projections or [],
                "processed_at": row.processed_at,
                "not_before": row.not_before,
                "updated_at": row.updated_at or timezone.now(),
            }
            for row in rows
        ],
        cls=ExactJSONEncoder,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH saved AS (UPDATE {Command._meta.db_table} AS c SET attempts = u.attempts,"
            " result = u.result, error = u.error, status = u.status, last_position = u.last_position,"
            " awaiting_projections = ARRAY(SELECT jsonb_array_elements_text(u.awaiting)),"
            " processed_at = u.processed_at, not_before = u.not_before, updated_at = u.updated_at"
            " FROM jsonb_to_recordset(%s::jsonb) AS u(id uuid, attempts int, result jsonb, error jsonb,"
            " status varchar, last_position bigint, awaiting jsonb, processed_at timestamptz,"
            " not_before timestamptz, updated_at timestamptz)"
            " WHERE c.id = u.id RETURNING c.id, c.status)"
            " SELECT count(pg_notify(%s, %s || ':' || id::text)) FROM saved WHERE status IN (%s, %s)",
            [
                document,
                notifications.CHANNEL,
                current_schema(),
                CommandStatus.PROCESSED,
                CommandStatus.FAILED,
            ],
        )


class _SlowPath(Exception):
    """The one-statement path cannot finish this batch; take the one-by-one path."""


class _Batch:
    """The commands of one transaction, with the aggregates they loaded.

    `handle_all` is the fast path: every aggregate of the batch loaded in two queries,
    every decision made in memory (later commands on an aggregate see the events of
    earlier ones, as the append lock guarantees nobody else appends meanwhile), and all
    their events written in one INSERT. `handle` is the one-by-one path.
    """

    def __init__(self, registry: Any, store: PostgresEventStore) -> None:
        from projections_app.registry import projections_for_event_types

        self.registry = registry
        self.store = store
        self.awaiting_for = projections_for_event_types
        self.aggregates: dict[tuple[str, UUID], Any] = {}
        self.appended = False

    def handle_all(self, rows: list[Command]) -> dict[UUID, str | RetryLater]:
        plans: list[tuple[Command, Any, CommandContext | None, Any, IntentError | None]] = []
        wanted: dict[tuple[str, UUID], Any] = {}
        for row in rows:
            try:
                command = self.registry.parse_command(row.type, row.payload)
            except IntentError as exc:  # stored before its type or schema changed
                plans.append((row, None, None, None, exc))
                continue
            row_ctx = context_for(row)
            key = (command.AGGREGATE_TYPE, command.aggregate_id(row_ctx))
            wanted[key] = self.registry.aggregate_for(command)
            plans.append((row, command, row_ctx, key, None))
        aggregates = self.store.load_many(wanted)
        before = {id(aggregate): aggregate.version for aggregate in aggregates.values()}
        staged_of: dict[UUID, list[Staged]] = {}
        errors: dict[UUID, IntentError] = {}
        every: list[Staged] = []
        for row, command, ctx, key, error in plans:
            if error is not None or ctx is None:
                errors[row.id] = error or IntentError("unreachable")
                continue
            aggregate = aggregates[key]
            try:
                events = self.registry.decide(aggregate, command, ctx)
                staged = self.store.stage(aggregate, events, event_metadata(command, ctx))
                for item in staged:
                    aggregate.evolve(item.event, item.version)
            except IntentError as exc:  # decisions raise before touching the aggregate
                errors[row.id] = exc
                continue
            except DatabaseError:
                raise
            except Exception as exc:
                raise _SlowPath(f"command {row.id} raised {exc!r}") from exc
            staged_of[row.id] = staged
            every += staged
        try:
            recorded = {rec.id: rec for rec in self.store.write_staged(every, before)}
        except ConcurrencyError as exc:
            raise _SlowPath(str(exc)) from exc
        outcomes: dict[UUID, str | RetryLater] = {}
        for row in rows:
            if row.id in errors:
                outcomes[row.id] = self._refused(row, errors[row.id])
            else:
                outcomes[row.id] = self._done(row, [recorded[item.event_id] for item in staged_of[row.id]])
        return outcomes

    def _refused(self, row: Command, exc: IntentError) -> str | RetryLater:
        """A domain error fails the command; "not now" (retryable, or a race lost every
        time) schedules another attempt."""
        row.updated_at = timezone.now()
        if isinstance(exc, RetryableDomainError | ConcurrencyError):
            return _retry_or_fail_row(row, exc)
        row.attempts += 1
        _mark_failed_row(row, exc.as_dict())
        return "failed"

    def handle(self, row: Command) -> str | RetryLater:
        """Decide and append for one locked row; the outcome is written onto `row`."""
        row.updated_at = timezone.now()
        try:
            command = self.registry.parse_command(row.type, row.payload)
            ctx = context_for(row)
            key = (command.AGGREGATE_TYPE, command.aggregate_id(ctx))
            for _conflict in range(settings.COMMAND_CONFLICT_RETRIES):
                try:
                    with transaction.atomic():  # this command alone rolls back on failure
                        aggregate = self.aggregates.get(key)
                        if aggregate is None:
                            aggregate = self.store.load(self.registry.aggregate_for(command), key[1])
                        events = self.registry.decide(aggregate, command, ctx)
                        recorded = (
                            self.store.append(
                                aggregate,
                                events,
                                event_metadata(command, ctx),
                                lock_held=True,
                            )
                            if events
                            else []
                        )
                    self.aggregates[key] = aggregate
                    return self._done(row, recorded)
                except ConcurrencyError:
                    # Only a writer that skips the append lock can cause this; reload.
                    self.aggregates.pop(key, None)
                    continue
            raise ConcurrencyError(
                f"Still conflicting after {settings.COMMAND_CONFLICT_RETRIES} re-decisions.",
                details={"conflict_retries": settings.COMMAND_CONFLICT_RETRIES},
            )
        except IntentError as exc:
            return self._refused(row, exc)
        except DatabaseError:
            raise  # the database went away: the whole batch rolls back, nothing happened
        except Exception as exc:
            # A bug outside the domain's errors: its savepoint rolled back whatever it did;
            # retry with backoff so it ends `failed` with the cause, not pending forever.
            self.aggregates.clear()
            log.warning("command %s raised %r", row.id, exc, exc_info=True)
            return _retry_or_fail_row(row, _unexpected(exc))

    def _done(self, row: Command, recorded: list[Recorded[DomainEvent]]) -> str:
        row.updated_at = timezone.now()
        awaiting = self.awaiting_for({rec.type for rec in recorded})
        row.attempts += 1
        row.result = _result(recorded)
        row.error = None
        if recorded and awaiting:
            row.status = CommandStatus.CONSUMED
            row.last_position = recorded[-1].position
            row.awaiting_projections = sorted(awaiting)
        else:
            row.status = CommandStatus.PROCESSED
            row.processed_at = timezone.now()
        self.appended = self.appended or bool(recorded)
        return str(row.status)


def _unexpected(exc: BaseException) -> IntentError:
    code = "infrastructure_error" if isinstance(exc, DatabaseError) else "unexpected_error"
    return IntentError(f"{type(exc).__name__}: {exc}"[:500], code=code)


def _retry_or_fail_row(row: Command, exc: IntentError) -> str | RetryLater:
    """Count the failed attempt on a locked row; schedule the next one, or fail it."""
    row.attempts += 1
    delay = retries.commands().delay_after(row.attempts)
    if delay is None:
        error = exc.as_dict()
        error["details"] = {**error["details"], "attempts": row.attempts, "retries_exhausted": True}
        _mark_failed_row(row, error)
        return "failed"
    row.not_before = timezone.now() + timedelta(seconds=delay)
    row.error = {**exc.as_dict(), "retrying": True}
    return RetryLater(delay)


def _mark_failed_row(row: Command, error: dict[str, Any]) -> None:
    row.status = CommandStatus.FAILED
    row.error = error
    row.processed_at = timezone.now()


def drain(max_seconds: float = 2.0) -> tuple[dict[UUID, str | RetryLater], bool]:
    """Handle due pending commands of this tenant batch after batch, for up to
    `max_seconds`. Returns the outcomes, and whether it stopped with work possibly left
    (the caller then yields the worker and asks for another run)."""
    deadline = time.monotonic() + max_seconds
    outcomes: dict[UUID, str | RetryLater] = {}
    while True:
        batch = process_batch(None)
        outcomes.update(batch)
        if len(batch) < settings.COMMAND_BATCH_SIZE:
            return outcomes, False
        if time.monotonic() >= deadline:
            return outcomes, True


def _wake_projections(schema: str) -> None:
    from projections_app.tasks import wake_projections

    wake_projections(schema)


def record_infrastructure_failure(command_id: UUID, exc: BaseException) -> str:
    """An exception escaped a whole batch (the database went away): nothing of it was
    committed. Count the attempt on the command whose message this was; retry with backoff."""
    with transaction.atomic():
        row = Command.objects.select_for_update().filter(pk=command_id, status=CommandStatus.PENDING).first()
        if row is None:
            return "already-final"
        outcome = _retry_or_fail_row(row, _unexpected(exc))
        row.save(update_fields=["attempts", "not_before", "error", "status", "processed_at", "updated_at"])
    if isinstance(outcome, RetryLater):
        raise outcome
    return outcome
