"""The periodic sweep: the safety net under every broker message.

Messages are only wake-up calls. If one is lost (broker outage, a crash between commit and
publish, a purged queue), the rows still say what is left to do, and this sweep re-sends
the wake-ups: work is delayed by at most one sweep interval plus the staleness margin.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db.models import Min
from django.utils import timezone
from django_tenants.utils import get_tenant_model, schema_context

from commands_app.models import Command, CommandStatus
from commands_app.tasks import enqueue
from intent_project import retries
from projections_app.models import ProjectionState, ProjectionStatus
from projections_app.runner import ensure_checkpoints, head_position
from projections_app.tasks import run_projections

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def sweep_schema(schema_name: str) -> dict[str, int]:
    """Re-send wake-ups for one tenant schema. Returns what it found, for logs and tests."""
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
        behind = ProjectionState.objects.filter(status=ProjectionStatus.RUNNING).aggregate(
            low=Min("position")
        )["low"]
        head = head_position()
        consumed = Command.objects.filter(status=CommandStatus.CONSUMED).exists()
    for command_id in ids:
        enqueue(schema_name, command_id)
    projections_behind = behind is not None and behind < head
    if projections_behind or consumed:
        run_projections.apply_async(args=(schema_name,))
    return {"commands": len(ids), "projections_behind": int(projections_behind)}


@shared_task(name="intent_project.tasks.sweep_all_tenants", ignore_result=True)
def sweep_all_tenants() -> None:
    for schema_name in (
        get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True)
    ):
        try:
            found = sweep_schema(schema_name)
        except Exception:
            log.exception("sweep of %s failed", schema_name)
            continue
        if found["commands"] or found["projections_behind"]:
            log.info("sweep %s: %s", schema_name, found)
