"""The periodic sweep: the safety net under every broker message.

Messages are only wake-up calls. If one is lost (broker outage, a crash between commit and
publish, a purged queue), the rows still say what is left to do, and this sweep re-sends
the wake-ups: work is delayed by at most one sweep interval plus the staleness margin.
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django_tenants.utils import get_tenant_model, schema_context

from commands_app.models import Command, CommandStatus
from commands_app.tasks import enqueue
from events_app.models import Event
from intent_project import lifecycle, metrics, retries
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.runner import ensure_checkpoints, head_position
from projections_app.tasks import run_projections

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def sweep_schema(schema_name: str, summary: dict[str, dict[str, float]] | None = None) -> dict[str, int]:
    """Re-send wake-ups for one tenant schema. Returns what it found, for logs and tests;
    adds the tenant's projection figures to `summary` when given (the metrics' summary)."""
    now = timezone.now()
    with schema_context(schema_name):
        pending = Command.objects.filter(status=CommandStatus.PENDING)
        ids = list(
            retries.due_for_resend(pending, now)
            .order_by("created_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if ids:
            Command.objects.filter(id__in=ids).update(swept_at=now)
        ensure_checkpoints()
        states = list(ProjectionState.objects.values_list("name", "position", "status"))
        head = head_position()
        consumed = Command.objects.filter(status=CommandStatus.CONSUMED).exists()
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
    return {"commands": len(ids), "projections_behind": int(projections_behind)}


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


@shared_task(name="intent_project.tasks.sweep_all_tenants", ignore_result=True)
def sweep_all_tenants() -> None:
    summary: dict[str, dict[str, float]] = {}
    for schema_name in (
        get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True)
    ):
        try:
            found = sweep_schema(schema_name, summary)
        except Exception:
            log.exception("sweep of %s failed", schema_name)
            continue
        if found["commands"] or found["projections_behind"]:
            log.info("sweep %s: %s", schema_name, found)
    try:
        metrics.record_projection_summary(summary)
    except Exception:  # Redis away: the scrape shows the figures missing, not wrong
        log.warning("could not record the projection summary for /metrics", exc_info=True)
