"""What operators see of each step: one log line per transition, and its metrics.

The engine calls one function here per transition of a command (stored, consumed with
its events, processed, failed with its error code, retried, postponed), per projection
batch and failure, per sweep pass and per operator action; each writes one structured
log line (intent_project/logs.py: JSON in production) carrying the ids it knows, and
updates the Prometheus figures of intent_project/metrics.py. Keeping both here means the
write and read sides never format a log line or touch a metric themselves, and a
transition cannot be logged without being counted, or the reverse.

Log lines are named `<thing>.<transition>` (`command.consumed`, `projection.stalled`,
`operator.resume`), so a log query for one transition is one equality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import structlog
from django.utils import timezone

from intent_project import metrics

_log = structlog.get_logger("intent.lifecycle")


def _say(level: str, event: str, **fields: Any) -> None:
    """One line; fields that are None are left out (as `logs.bind` leaves them out)."""
    getattr(_log, level)(
        event,
        **{
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in fields.items()
            if value is not None
        },
    )


class CommandRow(Protocol):
    """What this module reads of a command row (commands_app.models.Command)."""

    @property
    def id(self) -> UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def error(self) -> Any: ...
    @property
    def result(self) -> Any: ...
    @property
    def correlation_id(self) -> UUID | None: ...
    @property
    def causation_id(self) -> UUID | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def not_before(self) -> datetime | None: ...


def _ids(row: CommandRow) -> dict[str, Any]:
    return {
        "command_id": str(row.id),
        "command_type": row.type,
        "correlation_id": str(row.correlation_id) if row.correlation_id else None,
        "causation_id": str(row.causation_id) if row.causation_id else None,
    }


def _since_stored(row: CommandRow, now: datetime) -> float | None:
    return (now - row.created_at).total_seconds() if row.created_at else None


def command_stored(row: CommandRow, *, source: str) -> None:
    metrics.COMMANDS_STORED.labels(row.type).inc()
    _say("info", "command.stored", source=source, not_before=row.not_before, **_ids(row))


def commands_stored(rows: Iterable[CommandRow], *, source: str) -> None:
    for row in rows:
        command_stored(row, source=source)


def command_replayed(row: CommandRow) -> None:
    """The same id and body again: answered with the stored command, nothing new stored."""
    _say("info", "command.replayed", status=str(row.status), **_ids(row))


def commands_handled(rows: Iterable[CommandRow], *, seconds: float) -> None:
    """A batch's outcomes were saved (and committed): one line per command's transition."""
    metrics.COMMAND_HANDLING.observe(seconds)
    now = timezone.now()
    for row in rows:
        _handled(row, now)


def _handled(row: CommandRow, now: datetime) -> None:
    ids = _ids(row)
    status = str(row.status)
    waited = _since_stored(row, now)
    events = [event["type"] for event in ((row.result or {}).get("events") or [])]
    if status in ("consumed", "processed"):
        events_appended(events)
    if status == "consumed":
        if waited is not None:
            metrics.observe_latency("consumed", waited)
        _say("info", "command.consumed", events=len(events), attempts=row.attempts, seconds=waited, **ids)
    elif status == "processed":
        if waited is not None:
            metrics.observe_latency("consumed", waited)
            metrics.observe_latency("processed", waited)
        metrics.COMMANDS_FINAL.labels(row.type, status).inc()
        _say("info", "command.processed", events=len(events), attempts=row.attempts, seconds=waited, **ids)
    elif status == "failed":
        error = row.error or {}
        metrics.COMMANDS_FINAL.labels(row.type, status).inc()
        _say(
            "warning",
            "command.failed",
            error_code=error.get("code"),
            error=error.get("message"),
            attempts=row.attempts,
            **ids,
        )
    elif (row.error or {}).get("retrying"):
        metrics.COMMAND_RETRIES.labels("retry").inc()
        _say(
            "info",
            "command.retried",
            error_code=row.error.get("code"),
            attempts=row.attempts,
            not_before=row.not_before,
            **ids,
        )
    else:
        metrics.COMMAND_RETRIES.labels("postponed").inc()
        _say("info", "command.postponed", not_before=row.not_before, **ids)


def commands_settled(rows: Iterable[CommandRow]) -> None:
    """Consumed commands whose projections have all run are now processed."""
    now = timezone.now()
    for row in rows:
        waited = _since_stored(row, now)
        if waited is not None:
            metrics.observe_latency("processed", waited)
        metrics.COMMANDS_FINAL.labels(row.type, "processed").inc()
        _say("info", "command.processed", seconds=waited, **_ids(row))


def conflict_redecided(command_id: UUID, *, attempt: int) -> None:
    metrics.COMMAND_CONFLICTS.inc()
    _say("info", "command.conflict", command_id=str(command_id), attempt=attempt)


def events_appended(types: Iterable[str]) -> None:
    for event_type in types:
        metrics.EVENTS_APPENDED.labels(event_type).inc()


def projection_batch(name: str, *, events: int, position: int, seconds: float) -> None:
    metrics.PROJECTION_BATCH.labels(name).observe(seconds)
    metrics.PROJECTION_EVENTS.labels(name).inc(events)
    _say(
        "info",
        "projection.batch",
        projection=name,
        events=events,
        position=position,
        seconds=round(seconds, 6),
    )


def projection_failed(
    name: str,
    *,
    position: int | None,
    error: Mapping[str, Any],
    stalled: bool,
    exc_info: BaseException | None = None,
) -> None:
    metrics.PROJECTION_FAILURES.labels(name).inc()
    _say(
        "error" if stalled else "warning",
        "projection.stalled" if stalled else "projection.failed",
        projection=name,
        position=position,
        error_code=error.get("code"),
        error=error.get("message"),
        exc_info=exc_info,
    )


def sweep_resent(count: int, *, tenant: str) -> None:
    if count:
        metrics.SWEEP_RESENDS.inc(count)
        _say("info", "sweep.resent", tenant=tenant, commands=count)


def operator_action(action: str, *, operator: str, target: str, **details: Any) -> None:
    """An operator changed something (resume, skip, replay, rebuild, repair, retry,
    membership): who did what to which, for the audit trail."""
    _say("info", f"operator.{action}", operator=operator or "unknown", target=target, **details)
