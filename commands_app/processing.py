"""Handling one stored command: lock it, decide, append, record the outcome.

Runs inside `schema_context(schema)` (see tasks.py). Every outcome is written to the
command row, so a re-delivered message finds the command no longer pending and does
nothing: a command is executed at most once.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from commands_app.domain.errors import ConcurrencyError, IntentError, RetryableDomainError
from commands_app.domain.messages import CommandContext, Event, Recorded
from commands_app.domain.store import execute
from commands_app.models import Command, CommandStatus
from commands_app.registry import get_registry
from events_app.store import PostgresEventStore
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


def _result(recorded: list[Recorded[Event]]) -> dict[str, Any]:
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
    """Handle the command once. Returns what happened, for logs and tests.

    Raises RetryLater when a retryable error or an exhausted conflict loop means "not now".
    """
    from projections_app.registry import projections_for_event_types

    registry = get_registry()
    store = PostgresEventStore(registry)
    for _conflict in range(settings.COMMAND_CONFLICT_RETRIES):
        try:
            with transaction.atomic():
                # SKIP LOCKED: a second delivery of the same message while the first is
                # still running must not wait and then re-execute; it just leaves.
                row = Command.objects.select_for_update(skip_locked=True).filter(pk=command_id).first()
                if row is None:
                    return "locked-or-missing"
                if row.status != CommandStatus.PENDING:
                    return f"already-{row.status}"
                if row.not_before and row.not_before > timezone.now():
                    raise RetryLater((row.not_before - timezone.now()).total_seconds())
                command = registry.parse_command(row.type, row.payload)
                recorded = execute(store, registry, command, context_for(row))
                awaiting = projections_for_event_types({rec.type for rec in recorded})
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
                row.save(
                    update_fields=[
                        "attempts",
                        "result",
                        "error",
                        "status",
                        "last_position",
                        "awaiting_projections",
                        "processed_at",
                        "updated_at",
                    ]
                )
                if recorded:
                    # Bind the schema now: inside on_commit the connection may be public.
                    transaction.on_commit(functools.partial(_wake_projections, current_schema()))
            return str(row.status)
        except ConcurrencyError:
            # Another writer won the version race: reload and re-decide. The short random
            # pause de-synchronises writers hammering one hot aggregate.
            time.sleep(random.uniform(0, 0.002 * (_conflict + 1)))
            continue
        except RetryableDomainError as exc:
            return _retry_or_fail(command_id, exc)
        except IntentError as exc:
            _fail(command_id, exc.as_dict())
            return "failed"
    return _retry_or_fail(
        command_id,
        ConcurrencyError(
            f"Still conflicting after {settings.COMMAND_CONFLICT_RETRIES} re-decisions.",
            details={"conflict_retries": settings.COMMAND_CONFLICT_RETRIES},
        ),
    )


def _wake_projections(schema: str) -> None:
    from projections_app.tasks import wake_projections

    wake_projections(schema)


def backoff(attempt: int) -> float:
    return float(settings.COMMAND_RETRY_BACKOFF_SECONDS * (2 ** max(attempt - 1, 0)))


def _retry_or_fail(command_id: UUID, exc: IntentError) -> str:
    """Count the attempt; schedule the next one with backoff, or fail with the cause."""
    with transaction.atomic():
        row = Command.objects.select_for_update().filter(pk=command_id, status=CommandStatus.PENDING).first()
        if row is None:
            return "already-final"
        row.attempts += 1
        if row.attempts > settings.COMMAND_MAX_RETRIES:
            error = exc.as_dict()
            error["details"] = {
                **error["details"],
                "attempts": row.attempts,
                "retries_exhausted": True,
            }
            _mark_failed(row, error)
            return "failed"
        delay = backoff(row.attempts)
        row.not_before = timezone.now() + timedelta(seconds=delay)
        row.error = {**exc.as_dict(), "retrying": True}
        row.save(update_fields=["attempts", "not_before", "error", "updated_at"])
    raise RetryLater(delay)


def record_infrastructure_failure(command_id: UUID, exc: BaseException) -> str:
    """An exception other than our own errors escaped processing: count it, retry with backoff."""
    code = "infrastructure_error" if isinstance(exc, DatabaseError) else "unexpected_error"
    error = IntentError(f"{type(exc).__name__}: {exc}"[:500], code=code)
    return _retry_or_fail(command_id, error)


def _fail(command_id: UUID, error: dict[str, Any]) -> None:
    with transaction.atomic():
        row = Command.objects.select_for_update().filter(pk=command_id, status=CommandStatus.PENDING).first()
        if row is not None:
            row.attempts += 1
            _mark_failed(row, error)


def _mark_failed(row: Command, error: dict[str, Any]) -> None:
    row.status = CommandStatus.FAILED
    row.error = error
    row.processed_at = timezone.now()
    row.save(update_fields=["status", "error", "attempts", "processed_at", "updated_at"])
