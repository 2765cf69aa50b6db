"""Celery entry points of the write side. They take a schema name and an id, nothing else."""

from __future__ import annotations

import logging
from uuid import UUID

from celery import shared_task
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.processing import Postponed, Result
from intent_project import retries, wakeups
from intent_project.tenancy import assert_tenant_schema

log = logging.getLogger(__name__)


@shared_task(name="commands_app.tasks.process_command", acks_late=True, ignore_result=True)
def process_command(schema_name: str, command_id: str) -> str:
    assert_tenant_schema(schema_name)
    cid = UUID(command_id)
    with schema_context(schema_name):
        try:
            outcomes = processing.process_batch(cid)
        except Exception as exc:
            # The database went away, or code outside the domain's errors raised: nothing
            # was committed. Count the attempt and retry with backoff, so the command ends
            # `failed` with the cause rather than pending forever; if even counting fails
            # (database down), the sweep finds the command still pending.
            log.warning("command %s in %s hit %r; retrying", command_id, schema_name, exc, exc_info=True)
            try:
                outcome = processing.record_infrastructure_failure(cid, exc)
                if isinstance(outcome, Postponed):
                    _come_back(schema_name, cid, outcome.delay)
            except Exception:
                log.warning(
                    "could not record the failure of %s; the sweep will retry it",
                    command_id,
                    exc_info=True,
                )
            return "error-recorded"
    _come_back_for_postponed(schema_name, outcomes)
    outcome = outcomes[cid]
    log.info("command %s in %s: %s (%d in its batch)", command_id, schema_name, outcome, len(outcomes))
    return "retry-scheduled" if isinstance(outcome, Postponed) else str(outcome)


@shared_task(name="commands_app.tasks.drain_commands", acks_late=True, ignore_result=True)
def drain_commands(schema_name: str) -> str:
    """Handle the tenant's due commands in batches (the coalesced wake-up of the bus)."""
    from commands_app.bus import wake_commands

    assert_tenant_schema(schema_name)
    wakeups.started("commands", schema_name)
    with schema_context(schema_name):
        try:
            outcomes, more = processing.drain()
        except Exception as exc:
            # The database went away mid-batch: that batch rolled back and its commands are
            # still pending. Delayed, not lost: the sweep (or the next wake-up) drains again.
            log.warning("draining commands of %s hit %r", schema_name, exc, exc_info=True)
            return "interrupted"
    _come_back_for_postponed(schema_name, outcomes)
    if more:
        wake_commands(schema_name)  # time is up: yield the worker, continue in a new task
    log.info("drained %d commands in %s", len(outcomes), schema_name)
    return f"drained-{len(outcomes)}"


def _come_back_for_postponed(schema_name: str, outcomes: dict[UUID, Result]) -> None:
    """Send the next wake-up of every command a batch postponed: its own message may
    already be spent (it found the row locked by the batch)."""
    for command_id, outcome in outcomes.items():
        if isinstance(outcome, Postponed):
            _come_back(schema_name, command_id, outcome.delay)


def _come_back(schema_name: str, command_id: UUID, delay: float) -> None:
    """Schedule the next attempt; far-off ones are left to the sweep (retries.by_message)."""
    from commands_app.bus import enqueue

    if retries.by_message(delay):
        enqueue(schema_name, command_id, countdown=delay)
