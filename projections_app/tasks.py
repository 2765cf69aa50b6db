"""Celery entry points of the read side, and its half of the wake-up port."""

from __future__ import annotations

import logging
from collections.abc import Set
from contextvars import ContextVar
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django_tenants.utils import schema_context

from intent_project import wakeups
from intent_project.tenancy import assert_tenant_schema
from projections_app import runner
from projections_app.drift import reference_catalog
from projections_app.lookup import OperationRefused
from projections_app.rebuild import rebuild
from projections_app.registry import projections_for_event_types
from projections_app.repair import repair_schema as repair
from projections_app.runner import RunOutcome

log = logging.getLogger(__name__)

# The Redis client of the wake-up keys (kept under this name for callers that reset it).
_redis = wakeups.redis_client


def wake_projections(schema_name: str) -> None:
    """Ask for a projection run in `schema_name`; coalesces bursts into one queued run."""
    wakeups.request("projections", schema_name, lambda: run_projections.apply_async(args=(schema_name,)))


class ReadSide:
    """What the write side asks of the read side (intent_project.wakeups; registered in
    projections_app.apps)."""

    def awaiting(self, event_types: Set[str]) -> frozenset[str]:
        return projections_for_event_types(event_types)

    def events_appended(self, schema_name: str, event_types: Set[str]) -> None:
        # Every append wakes the run, whatever its types: sagas react to handled commands
        # too, and the run settles the commands projections have caught up with.
        if wakeups.inline() and not _inline_run.get():
            run_inline(schema_name)
        else:
            wake_projections(schema_name)

    def schema_created(self, schema_name: str) -> None:
        runner.ensure_checkpoints(schema_name)


_inline_run: ContextVar[bool] = ContextVar("intent_projections_inline", default=False)


def run_inline(schema_name: str) -> None:
    """The tenant's projection run, here and now, in the task whose commit appended the
    events (a worker serving both queues: wakeups.inline()), saving the message, its
    delivery and a second task per batch of commands.

    Whatever it cannot finish goes to a queued run, as a message would have: more than
    one run's work, a projection another runner holds (its snapshot of the log may end
    before these events), a database error. Never raises: the commands are committed
    whatever happens here, and the sweep is still the net under it all."""
    token = _inline_run.set(True)  # a commit inside the run (a saga's) sends a message
    try:
        _run_and_follow(schema_name, again_on=(RunOutcome.PROGRESS, RunOutcome.BUSY))
    except Exception:
        log.warning("the inline projection run of %s failed; sending it to a task", schema_name, exc_info=True)
        wake_projections(schema_name)
    finally:
        _inline_run.reset(token)


def _run_and_follow(schema_name: str, again_on: tuple[RunOutcome, ...]) -> dict[str, str]:
    """One run of the tenant's projections; a queued run follows when any ended in `again_on`."""
    with schema_context(schema_name):
        results = runner.run_all()
    if any(r.outcome in again_on for r in results.values()):
        wake_projections(schema_name)
    return {name: str(r.outcome) for name, r in results.items()}


@shared_task(name="projections_app.tasks.run_projections", acks_late=True, ignore_result=True)
def run_projections(schema_name: str) -> dict[str, str]:
    assert_tenant_schema(schema_name)
    wakeups.started("projections", schema_name)
    try:
        # More to do: yield the worker, continue in a new task. A projection another runner
        # holds is that runner's to finish (it wakes a run of its own when it made progress).
        return _run_and_follow(schema_name, again_on=(RunOutcome.PROGRESS,))
    except (OperationalError, InterfaceError) as exc:
        # Delayed, not lost: the checkpoint did not move, and the sweep wakes us again.
        log.warning(
            "projections of %s interrupted by the database (%s); the sweep will resume them", schema_name, exc
        )
        return {"error": "database-unavailable"}


@shared_task(name="projections_app.tasks.rebuild_projection", acks_late=False, ignore_result=True)
def rebuild_projection(schema_name: str, name: str) -> str:
    """Rebuild beside the live version (admin action). Not acked late: a rebuild that dies
    with its worker leaves the live version untouched and is simply started again."""
    assert_tenant_schema(schema_name)
    with schema_context(schema_name):
        return str(rebuild(name).status)


@shared_task(name="projections_app.tasks.repair_schema", acks_late=False, ignore_result=True)
def repair_schema(schema_name: str) -> list[str]:
    """Apply missing migrations, then rebuild drifted projections, in one tenant schema."""
    assert_tenant_schema(schema_name)
    with reference_catalog() as reference:
        return [f.message for f in repair(schema_name, reference, label=schema_name, say=log.info)]


@shared_task(
    name="projections_app.tasks.rebuild_after_erasure",
    bind=True,
    acks_late=True,
    ignore_result=True,
    max_retries=720,
)
def rebuild_after_erasure(self: Any, schema_name: str, name: str) -> str:
    """Rebuild a projection so that its read model holds an erased subject's placeholder.

    Acked late: a worker that dies mid-way leaves the live version untouched and the task
    is delivered again. A rebuild already running may have opened the keys before the
    erasure, so this one waits for it (a retry every 5 s, for up to an hour) and runs after."""
    assert_tenant_schema(schema_name)
    try:
        with schema_context(schema_name):
            return str(rebuild(name).status)
    except OperationRefused as exc:
        raise self.retry(countdown=5) from exc
