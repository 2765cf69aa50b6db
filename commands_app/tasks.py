"""Celery entry points of the write side, and the functions that send them.

Tasks take a schema name and an id, nothing else. The senders live beside the tasks:
a delivery that postpones a command sends its next one, and the bus (commands_app.bus)
sends the first. A message is only a wake-up call: losing one delays its command, and the
sweep (intent_project/tasks.py) sends it again from the row.
"""

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
    """Handle one command (and other due ones of its tenant, in the same batch)."""
    assert_tenant_schema(schema_name)
    cid = UUID(command_id)
    with schema_context(schema_name):
        try:
            outcomes = processing.process_batch(cid)
        except Exception as exc:
            # The database went away, or code outside the domain's errors raised: nothing
            # was committed. Count the attempt and retry with backoff, so the command ends
            # `failed` with the cause rather than pending forever.
            log.warning("command %s in %s hit %r; retrying", command_id, schema_name, exc, exc_info=True)
            _record_failure(schema_name, cid, exc)
            return "error-recorded"
    _come_back_for_postponed(schema_name, outcomes)
    outcome = outcomes[cid]
    log.info("command %s in %s: %s (%d in its batch)", command_id, schema_name, outcome, len(outcomes))
    return "retry-scheduled" if isinstance(outcome, Postponed) else str(outcome)


@shared_task(name="commands_app.tasks.drain_commands", acks_late=True, ignore_result=True)
def drain_commands(schema_name: str) -> str:
    """Handle the tenant's due commands in batches (the coalesced wake-up of the bus)."""
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


def _record_failure(schema_name: str, command_id: UUID, exc: BaseException) -> None:
    """Count the failed attempt; if even that fails (database down), the sweep finds the
    command still pending."""
    try:
        outcome = processing.record_infrastructure_failure(command_id, exc)
    except Exception:
        log.warning("could not record the failure of %s; the sweep will retry it", command_id, exc_info=True)
        return
    if isinstance(outcome, Postponed):
        enqueue(schema_name, command_id, outcome.delay)


def _come_back_for_postponed(schema_name: str, outcomes: dict[UUID, Result]) -> None:
    """Send the next wake-up of every command a batch postponed: its own message may
    already be spent (it found the row locked by the batch)."""
    for command_id, outcome in outcomes.items():
        if isinstance(outcome, Postponed):
            enqueue(schema_name, command_id, outcome.delay)


def enqueue(schema_name: str, command_id: UUID, countdown: float | None = None) -> None:
    """Wake a worker for a stored command, due now or in `countdown` seconds.

    A command due now joins the tenant's next drain (one queued drain per tenant, however
    many commands arrive meanwhile); one due within the message horizon gets its own
    delayed message; a later one is left to the sweep, which sends it once due
    (intent_project.retries.by_message).
    """
    if not countdown or countdown <= 0:
        wake_commands(schema_name)
        return
    if not retries.by_message(countdown):
        return
    try:
        process_command.apply_async(args=(schema_name, str(command_id)), countdown=countdown)
    except Exception:  # broker down or unreachable: the committed row is the truth
        log.warning(
            "could not enqueue command %s in %s; the sweep will pick it up",
            command_id,
            schema_name,
            exc_info=True,
        )


def wake_commands(schema_name: str) -> None:
    """Ask for a drain of the tenant's due commands; bursts coalesce into one queued drain."""
    wakeups.request("commands", schema_name, lambda: drain_commands.apply_async(args=(schema_name,)))
