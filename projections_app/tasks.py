"""Celery entry points of the read side."""

from __future__ import annotations

import functools
import logging

import redis
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django_tenants.utils import schema_context

from intent_project.tenancy import assert_tenant_schema
from projections_app import runner

log = logging.getLogger(__name__)

# While this key exists, a run_projections message for the schema is queued and has not
# started reading yet, so another wake-up would be redundant. The task deletes the key
# *before* it reads, so an event committed after that sets it again and gets its own run.
_WAKE_KEY = "intent:projections:wake:{schema}"
_WAKE_TTL_SECONDS = 30  # a lost message blocks wake-ups at most this long (the sweep covers it)


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def wake_projections(schema_name: str) -> None:
    """Ask for a projection run in `schema_name`; coalesces bursts into one queued run."""
    try:
        if _redis().set(_WAKE_KEY.format(schema=schema_name), 1, nx=True, ex=_WAKE_TTL_SECONDS):
            run_projections.apply_async(args=(schema_name,))
    except Exception:
        log.warning("could not wake projections in %s; the sweep will run them", schema_name, exc_info=True)


@shared_task(name="projections_app.tasks.run_projections", acks_late=True, ignore_result=True)
def run_projections(schema_name: str) -> dict[str, str]:
    assert_tenant_schema(schema_name)
    try:
        _redis().delete(_WAKE_KEY.format(schema=schema_name))
    except Exception:
        log.warning("could not clear the wake key of %s", schema_name, exc_info=True)
    try:
        with schema_context(schema_name):
            results = runner.run_all()
    except (OperationalError, InterfaceError) as exc:
        # Delayed, not lost: the checkpoint did not move, and the sweep wakes us again.
        log.warning(
            "projections of %s interrupted by the database (%s); the sweep will resume them", schema_name, exc
        )
        return {"error": "database-unavailable"}
    if any(r.outcome == "progress" for r in results.values()):
        wake_projections(schema_name)  # more to do: yield the worker, continue in a new task
    return {name: r.outcome for name, r in results.items()}


@shared_task(name="projections_app.tasks.rebuild_projection", acks_late=False, ignore_result=True)
def rebuild_projection(schema_name: str, name: str) -> str:
    """Rebuild beside the live version (admin action). Not acked late: a rebuild that dies
    with its worker leaves the live version untouched and is simply started again."""
    from projections_app.rebuild import rebuild

    assert_tenant_schema(schema_name)
    with schema_context(schema_name):
        return str(rebuild(name).status)


@shared_task(name="projections_app.tasks.repair_schema", acks_late=False, ignore_result=True)
def repair_schema(schema_name: str) -> list[str]:
    """Apply missing migrations, then rebuild drifted projections, in one tenant schema."""
    from projections_app.drift import reference_catalog
    from projections_app.repair import repair_schema as repair

    assert_tenant_schema(schema_name)
    with reference_catalog() as reference:
        return [f.message for f in repair(schema_name, reference, label=schema_name, say=log.info)]
