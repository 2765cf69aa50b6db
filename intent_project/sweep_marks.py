"""Which tenant schemas the sweep visits: the marked ones, and all of them now and then.

A pass used to visit every tenant (7-8 queries each: 4 s and 7,000 queries at 1,000
tenants, more than the 5 s interval). Most tenants are idle most of the time, so a
tenant schema is marked in the shared table `tenants_sweepmark` whenever something creates
work the sweep watches (a command inserted or set back to pending, events appended, a
checkpoint created or its status, version or position changed backwards, a dead letter),
and a pass reads the marks in one query and visits only those. The writer marks in its
own transaction, from the application code (intent_project/announcements.py: folded into
the append's and the bus's statements, from the models for the rarer ORM writes); triggers
did until Citus ruled them out (docs/scaling.md). A tenant keeps its mark until a visit finds nothing left:
no pending or consumed command, every registered consumer has a checkpoint at the head
(none stalled), no open dead letter. So a skipped tenant's /metrics figures are all zero,
and the summary of the visited tenants is the summary of all of them.

Every SWEEP_FULL_PASS_SECONDS one pass visits every tenant anyway: the safety net for
whatever created work without marking (a projection added by a deployment, whose
checkpoints the visit creates; rows changed in SQL, outside the application), and the
place where marks of deleted schemas go. Which pass is full is decided in Redis (SET NX
with an expiry), so any number of beats and workers agree on one full pass per period.

Removing a mark must never lose work committed meanwhile (see `release`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django_tenants.utils import get_tenant_model

from commands_app.models import Command, CommandStatus
from events_app.models import Event
from intent_project import announcements
from intent_project.tenants.models import SweepMark
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.registry import get_consumers

log = logging.getLogger(__name__)

FULL_PASS_KEY = "intent:sweep:full-pass"


@dataclass(frozen=True)
class Visit:
    """A schema the pass visits; `marked_at` is None for an unmarked one (full pass)."""

    schema_name: str
    marked_at: datetime | None


def full_pass_due() -> bool:
    """Whether this pass is the period's full pass: the first caller in each period wins.

    Redis away: a marked pass (the broker is Redis too, so the pass's own wake-ups are
    not going anywhere either); the full pass comes once Redis answers again."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.set(FULL_PASS_KEY, "1", nx=True, ex=max(int(settings.SWEEP_FULL_PASS_SECONDS), 1)))
    except redis.RedisError:
        log.warning("sweep: Redis away, so no full pass now", exc_info=True)
        return False


def to_visit(full: bool) -> list[Visit]:
    """The marked schemas of live tenants (one query), or every tenant on a full pass.

    Marks of schemas that are no tenant (deleted, the template) are dropped here."""
    tenants = get_tenant_model().objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
    rows = list(
        SweepMark.objects.annotate(
            live=Exists(tenants.filter(schema_name=OuterRef("schema_name")))
        ).values_list("schema_name", "marked_at", "live")
    )
    marks = {schema: marked_at for schema, marked_at, live in rows if live}
    stale = [schema for schema, _, live in rows if not live]
    if stale:
        SweepMark.objects.filter(schema_name__in=stale).delete()
    if full:
        schemas = list(tenants.order_by("schema_name").values_list("schema_name", flat=True))
    else:
        schemas = sorted(marks)
    return [Visit(schema, marks.get(schema)) for schema in schemas]


def mark(schema_name: str) -> None:
    """Mark a schema (a full pass found work in an unmarked one: follow it until done)."""
    SweepMark.objects.bulk_create([SweepMark(schema_name=schema_name)], ignore_conflicts=True)


def _idle_sql(schema_name: str) -> str:
    """A condition true when the schema has nothing left for the sweep (see the module
    docstring); parameters: the registered consumers' names, twice."""
    q = connection.ops.quote_name

    def table(model: type) -> str:
        return f"{q(schema_name)}.{q(model._meta.db_table)}"  # type: ignore[attr-defined]

    return f"""
        NOT EXISTS (SELECT 1 FROM {table(Command)} WHERE status IN ('{CommandStatus.PENDING}', '{CommandStatus.CONSUMED}'))
        AND NOT EXISTS (SELECT 1 FROM {table(DeadLetter)} WHERE replayed_at IS NULL)
        AND NOT EXISTS (
            SELECT 1 FROM {table(ProjectionState)}
             WHERE name = ANY(%s)
               AND (status <> '{ProjectionStatus.RUNNING}'
                    OR position < (SELECT coalesce(max(position), 0) FROM {table(Event)})))
        AND (SELECT count(*) FROM {table(ProjectionState)} WHERE name = ANY(%s)) = cardinality(%s::text[])
    """


def release(visit: Visit) -> bool:
    """Remove the schema's mark if it still has nothing left to do. True when removed.

    The race it must not lose: a writer whose mark found the mark already there (and
    so wrote nothing) commits work after the visit looked. Every such writer holds the
    shared advisory lock of the schema's mark until it commits, so: take that lock
    exclusively, without waiting (a writer holds it: keep the mark, the next pass sees its
    work); then, in a statement that starts after the lock was granted, so that its
    snapshot sees every writer that held it as committed, re-check the schema's rows and
    delete the mark only if they are idle and the mark is the one read at the start of
    the pass (a newer mark came from a later writer, or another pass, and stays). Writers
    arriving meanwhile wait on the shared lock for this short transaction, then find the
    mark gone and insert it again.
    """
    if visit.marked_at is None:
        return False
    names = [consumer.name for consumer in get_consumers()]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_xact_lock({announcements.LOCK_KEY})", [visit.schema_name])
        if not cursor.fetchone()[0]:
            return False
        cursor.execute(
            f"DELETE FROM {connection.ops.quote_name(settings.PUBLIC_SCHEMA_NAME)}."
            f"{connection.ops.quote_name(SweepMark._meta.db_table)}"
            f" WHERE schema_name = %s AND marked_at = %s AND {_idle_sql(visit.schema_name)}",
            [visit.schema_name, visit.marked_at, names, names, names],
        )
        return bool(cursor.rowcount)
