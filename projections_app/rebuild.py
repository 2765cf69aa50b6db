"""Rebuild a projection beside its live version, then swap it in without downtime.

1. Build: a scratch schema gets fresh read-model tables (created by Django from the
   models, so the new shape is exactly the code's), its own checkpoint table, and views
   onto the tenant's event log and dead letters. With the search path set to
   (scratch, tenant, public), the ordinary runner and the ordinary handlers replay the
   log into the scratch tables. The live version keeps serving and keeps up meanwhile.
2. Swap, in one transaction: lock the live checkpoint (the live runner waits), lock the
   live tables, apply what was appended since, drop the live tables and move the new ones
   into the tenant schema, and hand the new checkpoint to the live row. Readers that
   queued behind the lock re-resolve the table name and read the new table; nobody ever
   sees a half-built read model.
3. Cancel (or failure) at any point before the swap drops the scratch schema; the live
   version is untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from events_app.models import Event
from intent_project.tenancy import current_schema
from projections_app.lookup import OperationRefused, projection_named
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus, RebuildJob, RebuildStatus
from projections_app.projectors.base import Projection
from projections_app.runner import RunResult, run_projection
from projections_app.schemas import (
    create_schema_with_models,
    drop_schema,
    quote,
    scratch_schema_name,
    search_path,
)

Progress = Callable[[RebuildJob], None]
REBUILD_BATCH = 10_000


class RebuildCancelled(Exception):
    pass


class RebuildFailed(Exception):
    pass


def _advance(projection: Projection, batch_size: int) -> RunResult:
    result = run_projection(projection, batch_size=batch_size)
    if result.outcome == "failed":
        state = ProjectionState.objects.get(name=projection.name)
        raise RebuildFailed((state.last_error or {}).get("message", "a handler failed"))
    return result


def rebuild(name: str, *, progress: Progress | None = None, batch_size: int = REBUILD_BATCH) -> RebuildJob:
    """Rebuild projection `name` in the current tenant schema. Returns the finished job."""
    projection = projection_named(name)
    tenant_schema = current_schema()
    scratch = scratch_schema_name(tenant_schema, name)
    try:
        with transaction.atomic():
            job = RebuildJob.objects.create(projection=name, version=projection.version)
    except IntegrityError:
        raise OperationRefused(f"A rebuild of '{name}' is already running in this tenant.") from None
    try:
        job.events_total = Event.objects.filter(type__in=projection.event_types).count()
        job.save(update_fields=["events_total", "updated_at"])
        _prepare_scratch(projection, tenant_schema, scratch)
        started = time.monotonic()
        with search_path(scratch, tenant_schema):
            while True:
                job.refresh_from_db(fields=["status"])
                if job.status == RebuildStatus.CANCELLING:
                    raise RebuildCancelled
                result = _advance(projection, batch_size)
                job.events_done += result.applied
                job.position = ProjectionState.objects.get(name=name).position
                job.events_per_second = job.events_done / max(time.monotonic() - started, 1e-6)
                job.save(update_fields=["events_done", "position", "events_per_second", "updated_at"])
                if progress:
                    progress(job)
                if result.caught_up:
                    break
        _swap(projection, tenant_schema, scratch, job)
        job.status = RebuildStatus.SWAPPED
    except RebuildCancelled:
        job.status = RebuildStatus.CANCELLED
    except Exception as exc:
        job.status = RebuildStatus.FAILED
        job.error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        drop_schema(scratch)
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at", "updated_at"])
        if progress:
            progress(job)
    return job


def _prepare_scratch(projection: Projection, tenant_schema: str, scratch: str) -> None:
    create_schema_with_models(scratch, [*projection.read_models, ProjectionState])
    with connection.cursor() as cursor:
        # The log and the dead letters stay where they are; the build reads them through views.
        for model in (Event, DeadLetter):
            table = model._meta.db_table
            cursor.execute(
                f"CREATE VIEW {quote(scratch)}.{quote(table)} AS SELECT * FROM {quote(tenant_schema)}.{quote(table)}"
            )
    with search_path(scratch, tenant_schema):
        ProjectionState.objects.create(
            name=projection.name, version=projection.version, fingerprint=projection.fingerprint
        )


def _swap(projection: Projection, tenant_schema: str, scratch: str, job: RebuildJob) -> None:
    with transaction.atomic():
        # The live runner holds this row while it applies a batch; once we hold it, the live
        # tables are quiet and stay so until we commit.
        live = ProjectionState.objects.select_for_update().get(name=projection.name)
        with connection.cursor() as cursor:
            for model in projection.read_models:
                cursor.execute(
                    f"LOCK TABLE {quote(tenant_schema)}.{quote(model._meta.db_table)} IN ACCESS EXCLUSIVE MODE"
                )
        with search_path(scratch, tenant_schema):
            while not _advance(projection, REBUILD_BATCH).caught_up:
                pass
            built = ProjectionState.objects.get(name=projection.name)
        with connection.cursor() as cursor:
            for model in projection.read_models:
                table = quote(model._meta.db_table)
                cursor.execute(f"DROP TABLE {quote(tenant_schema)}.{table}")
                cursor.execute(f"ALTER TABLE {quote(scratch)}.{table} SET SCHEMA {quote(tenant_schema)}")
        live.position = built.position
        live.version = projection.version
        live.fingerprint = projection.fingerprint
        live.status = ProjectionStatus.RUNNING
        live.failures = 0
        live.last_error = None
        live.retry_at = None
        live.save()
        job.position = built.position


def request_cancel(name: str) -> int:
    """Ask running rebuilds of `name` (current tenant) to stop; they drop their scratch work."""
    return RebuildJob.objects.filter(projection=name, status=RebuildStatus.RUNNING).update(
        status=RebuildStatus.CANCELLING, updated_at=timezone.now()
    )
