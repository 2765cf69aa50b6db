"""The periodic sweep: the safety net under every broker message.

Messages are only wake-up calls. If one is lost (broker outage, a crash between commit and
publish, a purged queue), the rows still say what is left to do, and this sweep re-sends
the wake-ups: work is delayed by at most one sweep interval plus the staleness margin.
A pass visits the tenants whose schema marked itself as having work, and every tenant once
per SWEEP_FULL_PASS_SECONDS (intent_project/sweep_marks.py says why no work is lost).
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django_tenants.utils import schema_context

from commands_app.models import Command, CommandStatus
from commands_app.tasks import enqueue
from events_app.models import Event
from intent_project import lifecycle, metrics, retries, sweep_marks
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.registry import get_consumers
from projections_app.runner import ensure_checkpoints, head_position
from projections_app.tasks import run_projections

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def sweep_schema(schema_name: str, summary: dict[str, dict[str, float]] | None = None) -> dict[str, int]:
    """Re-send wake-ups for one tenant schema. Returns what it found, for logs and tests;
    adds the tenant's projection figures to `summary` when given (the metrics' summary)."""
    now = timezone.now()
    consumers = get_consumers()
    with schema_context(schema_name):
        pending = Command.objects.filter(status=CommandStatus.PENDING)
        ids = list(
            retries.due_for_resend(pending, now)
            .order_by("created_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if ids:
            Command.objects.filter(id__in=ids).update(swept_at=now)
        states = list(ProjectionState.objects.values_list("name", "position", "status"))
        if {c.name for c in consumers} - {name for name, _, _ in states}:
            ensure_checkpoints()  # a new tenant, or a projection added by a deployment
            states = list(ProjectionState.objects.values_list("name", "position", "status"))
        head = head_position()
        any_pending, consumed = _commands_waiting()
        figures = _projection_figures(states, head, now) if summary is not None else {}
    for command_id in ids:
        enqueue(schema_name, command_id)
    lifecycle.sweep_resent(len(ids), tenant=schema_name)
    projections_behind = any(
        position < head for _, position, status in states if status == ProjectionStatus.RUNNING
    )
    if projections_behind or consumed:
        run_projections.apply_async(args=(schema_name,))
    if summary is not None:
        _merge(summary, figures)
    registered = {c.name for c in consumers}
    idle = not (
        any_pending
        or consumed
        or any(
            position < head or status != ProjectionStatus.RUNNING
            for name, position, status in states
            if name in registered
        )
        or any(f["dead_letters"] for f in figures.values())
    )
    return {
        "commands": len(ids),
        "projections_behind": int(projections_behind),
        "consumed": int(consumed),
        # Nothing left (sweep_marks.release re-checks before removing the mark); only
        # meaningful with a summary, which carries the dead letters.
        "idle": int(idle and summary is not None),
    }


def _commands_waiting() -> tuple[bool, bool]:
    """Whether any command is pending, and any consumed (settled by the projection run)."""
    table = connection.ops.quote_name(Command._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE status = %s),"
            f" EXISTS (SELECT 1 FROM {table} WHERE status = %s)",
            [CommandStatus.PENDING, CommandStatus.CONSUMED],
        )
        pending, consumed = cursor.fetchone()
    return bool(pending), bool(consumed)


def _projection_figures(
    states: list[tuple[str, int, str]], head: int, now: datetime
) -> dict[str, dict[str, float]]:
    """This tenant's figures per projection for /metrics: events behind, the age of the
    oldest event not yet applied, stalled (0 or 1) and open dead letters."""
    dead = dict(
        DeadLetter.objects.filter(replayed_at__isnull=True)
        .values_list("projection")
        .annotate(n=Count("id"))
        .values_list("projection", "n")
    )
    ages: dict[int, float] = {}
    lagging = sorted({position for _, position, _ in states if position < head})
    if lagging:
        # The first event after each lagging checkpoint, in one round trip.
        table = connection.ops.quote_name(Event._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT p.pos, (SELECT recorded_at FROM {table} WHERE position > p.pos"
                " ORDER BY position LIMIT 1) FROM unnest(%s::bigint[]) AS p(pos)",
                [lagging],
            )
            for position, recorded in cursor.fetchall():
                if recorded is not None:
                    ages[position] = max((now - recorded).total_seconds(), 0.0)
    return {
        name: {
            "lag_events": float(max(head - position, 0)),
            "lag_seconds": ages.get(position, 0.0),
            "stalled": 1.0 if status == ProjectionStatus.STALLED else 0.0,
            "dead_letters": float(dead.get(name, 0)),
        }
        for name, position, status in states
    }


def _merge(summary: dict[str, dict[str, float]], figures: dict[str, dict[str, float]]) -> None:
    """Over tenants: the worst lag, the number of stalled tenants, all dead letters."""
    for name, these in figures.items():
        total = summary.setdefault(
            name, {"lag_events": 0.0, "lag_seconds": 0.0, "stalled": 0.0, "dead_letters": 0.0}
        )
        total["lag_events"] = max(total["lag_events"], these["lag_events"])
        total["lag_seconds"] = max(total["lag_seconds"], these["lag_seconds"])
        total["stalled"] += these["stalled"]
        total["dead_letters"] += these["dead_letters"]


def empty_summary() -> dict[str, dict[str, float]]:
    """Every registered consumer at zero: what an idle tenant contributes."""
    return {
        c.name: {"lag_events": 0.0, "lag_seconds": 0.0, "stalled": 0.0, "dead_letters": 0.0}
        for c in get_consumers()
    }


@shared_task(name="intent_project.tasks.sweep_all_tenants", ignore_result=True)
def sweep_all_tenants(full: bool | None = None) -> dict[str, int]:
    """One pass: the marked tenants, or every tenant on the period's full pass
    (intent_project/sweep_marks.py). Returns what it did, for logs, tests and the bench."""
    if full is None:
        full = sweep_marks.full_pass_due()
    visits = sweep_marks.to_visit(full)
    # Skipped tenants are idle, and idle tenants contribute zeros: the visited ones' figures
    # are the whole summary (a tenant keeps its mark while any figure of it is not zero).
    summary = empty_summary()
    released = 0
    for visit in visits:
        try:
            found = sweep_schema(visit.schema_name, summary)
            if visit.marked_at is None and not found["idle"]:
                sweep_marks.mark(visit.schema_name)  # work nobody marked: follow it until done
            elif visit.marked_at is not None and found["idle"]:
                released += sweep_marks.release(visit)
        except Exception:
            log.exception("sweep of %s failed", visit.schema_name)
            continue
        if found["commands"] or found["projections_behind"]:
            log.info("sweep %s: %s", visit.schema_name, found)
    try:
        metrics.record_projection_summary(summary)
    except Exception:  # Redis away: the scrape shows the figures missing, not wrong
        log.warning("could not record the projection summary for /metrics", exc_info=True)
    return {"full": int(full), "visited": len(visits), "released": released}
