"""Operator actions on projections and sagas, shared by the API, the admin and management
commands: resume, skip, replay a dead letter, rebuild, cancel a rebuild, check drift and
repair. Each asks the operator policy (commands_app/operations.py) before it reads or
changes anything, so no surface decides on its own and a refusal leaves nothing behind.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from commands_app.domain.errors import IntentError
from commands_app.operations import Operator, require_eraser, require_operator
from commands_app.registry import get_registry
from events_app import personal
from events_app.models import Event
from events_app.store import to_recorded
from intent_project import lifecycle
from intent_project.tenancy import current_schema
from projections_app import tasks
from projections_app.drift import Finding, check_schema, reference_catalog
from projections_app.lookup import OperationRefused, projection_named
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.projectors.base import Projection
from projections_app.rebuild import rebuild, request_cancel
from projections_app.registry import get_projections, projections_for_event_types
from projections_app.runner import ensure_checkpoints, run_projection

log = logging.getLogger(__name__)


def _locked_state(name: str) -> ProjectionState:
    ensure_checkpoints()
    return ProjectionState.objects.select_for_update().get(name=name)


def _wake_after_commit() -> None:
    # A worker woken before the commit would still read the projection as stalled.
    schema = current_schema()
    transaction.on_commit(lambda: tasks.wake_projections(schema))


def _audit(action: str, by: Operator, target: str, **details: Any) -> None:
    """Log who did what, once the change is committed (nothing is logged for a rollback)."""
    transaction.on_commit(
        functools.partial(lifecycle.operator_action, action, operator=by.name, target=target, **details)
    )


def resume(name: str, *, by: Operator) -> ProjectionState:
    """Retry the failing event now: clear the failure count and let the runner go on."""
    require_operator(by)
    projection_named(name)
    with transaction.atomic():
        state = _locked_state(name)
        if state.status == ProjectionStatus.RUNNING and not state.failures and state.retry_at is None:
            raise OperationRefused(
                f"Projection '{name}' is running and failing on nothing; there is nothing to resume.",
                details={"status": state.status},
            )
        state.status = ProjectionStatus.RUNNING
        state.failures = 0
        state.retry_at = None
        state.save(update_fields=["status", "failures", "retry_at", "updated_at"])
        _wake_after_commit()
        _audit("resume", by, name, position=state.position)
    return state


def skip(name: str, *, by: Operator) -> DeadLetter:
    """Move the event the projection is stuck on into a dead letter, then resume."""
    require_operator(by)
    projection_named(name)
    with transaction.atomic():
        state = _locked_state(name)
        details = (state.last_error or {}).get("details") or {}
        event_id = details.get("event_id")
        if state.status != ProjectionStatus.STALLED or not event_id:
            raise OperationRefused(
                f"Projection '{name}' is not stalled on an event; there is nothing to skip.",
                details={"status": state.status},
            )
        event = Event.objects.get(id=event_id)
        letter, _ = DeadLetter.objects.get_or_create(
            projection=name,
            event_id=event.id,
            defaults={
                "position": event.position,
                "event_type": event.type,
                "error": state.last_error,
                "skipped_by": by.name,
            },
        )
        state.status = ProjectionStatus.RUNNING
        state.failures = 0
        state.retry_at = None
        state.save(update_fields=["status", "failures", "retry_at", "updated_at"])
        _wake_after_commit()
        _audit("skip", by, name, position=event.position, event_id=str(event.id))
    return letter


def replay_dead_letter(letter_id: int, *, by: Operator, projection: str | None = None) -> DeadLetter:
    """Apply a skipped event now (out of order: the operator judged it safe) and clear it.

    With `projection`, a dead letter of another projection answers as a missing one.
    """
    require_operator(by)
    with transaction.atomic():
        letters = DeadLetter.objects.select_for_update().filter(pk=letter_id)
        if projection is not None:
            letters = letters.filter(projection=projection)
        letter = letters.first()
        if letter is None:
            where = f" for '{projection[:80]}'" if projection is not None else ""
            raise IntentError(f"No dead letter {letter_id}{where}.", code="not_found")
        if letter.replayed_at is not None:
            raise OperationRefused(f"Dead letter {letter_id} was already replayed.")
        consumer = projection_named(letter.projection)
        consumer.apply(to_recorded(Event.objects.get(id=letter.event_id), get_registry()))
        letter.replayed_at = timezone.now()
        letter.save(update_fields=["replayed_at"])
        _audit("replay", by, letter.projection, position=letter.position, dead_letter=letter.pk)
    return letter


def request_rebuild(name: str, *, by: Operator) -> None:
    """Queue a rebuild beside the live version (projections_app.rebuild, on a worker)."""
    require_operator(by)
    projection_named(name)
    schema = current_schema()
    transaction.on_commit(lambda: tasks.rebuild_projection.delay(schema, name))
    _audit("rebuild", by, name)


def cancel_rebuild(name: str, *, by: Operator) -> int:
    """Ask running rebuilds of `name` to stop (the live version stays untouched)."""
    require_operator(by)
    cancelled = request_cancel(name)
    _audit("cancel_rebuild", by, name, cancelled=cancelled)
    return cancelled


def check_drift(
    schema_name: str, *, by: Operator, reference: dict[str, dict[str, Any]] | None = None
) -> list[Finding]:
    """Compare one tenant schema with the models, its migrations and the projection code.

    `reference` is a catalog from `drift.reference_catalog()`, to share one across tenants.
    """
    require_operator(by)
    if reference is not None:
        return check_schema(schema_name, reference)
    with reference_catalog() as catalog:
        return check_schema(schema_name, catalog)


def request_repair(schema_name: str, *, by: Operator) -> None:
    """Queue a repair of one tenant schema: migrations, then rebuilds of what drifted."""
    require_operator(by)
    transaction.on_commit(lambda: tasks.repair_schema.delay(schema_name))
    _audit("repair", by, schema_name)


@dataclass(frozen=True)
class Forgotten:
    """An erasure: the subjects erased now and before, and the projections rebuilt."""

    erased: tuple[str, ...]
    already: tuple[str, ...]
    projections: tuple[str, ...]


def forget_subjects(subjects: list[str], *, by: Operator, rebuild_here: bool = False) -> Forgotten:
    """Erase the personal data of `subjects` for good: delete their keys (their sealed
    values, in every row and backup, then read as the placeholder), record who and when,
    and rebuild every projection that reads personal data, so the read models hold the
    placeholder too. The events stay as they are: immutable and replayable.

    The rebuilds run on a worker, or here with `rebuild_here` (the management command
    waits for them). Until a rebuild swaps in, its live read model still shows the old
    values. Tenant admins only; a refusal, or an unknown subject, changes nothing.
    """
    require_eraser(by)
    if not subjects:
        raise IntentError("Name at least one subject to forget.", code="invalid_request")
    names = tuple(sorted(projections_for_event_types(get_registry().personal_events)))
    schema = current_schema()
    with transaction.atomic():
        erasure = personal.erase(subjects, by=by.name)
        if erasure.erased:
            # Until rebuilt, these read models still hold what the keys opened: marked as
            # built by other code, they show as drift (admin, check_drift) and a repair
            # rebuilds them, should the queued rebuild below be lost with the broker.
            ProjectionState.objects.filter(name__in=names).update(fingerprint="")
        if erasure.erased and not rebuild_here:
            for name in names:
                transaction.on_commit(functools.partial(tasks.rebuild_after_erasure.delay, schema, name))
        _audit(
            "forget_subject",
            by,
            ",".join(erasure.erased or erasure.already),
            erased=len(erasure.erased),
            already=len(erasure.already),
            rebuilds=list(names) if erasure.erased else [],
        )
    if not connection.in_atomic_block:  # VACUUM runs outside a transaction only
        try:
            # The old row versions still hold the keys until VACUUM takes them out of the table.
            personal.vacuum_keys()
        except DatabaseError:
            log.warning("could not vacuum the subject keys after an erasure", exc_info=True)
    if erasure.erased and rebuild_here:
        for name in names:
            rebuild(name)
    return Forgotten(erasure.erased, erasure.already, names if erasure.erased else ())


@dataclass(frozen=True)
class Verification:
    projection: str
    checkpoint: int
    live_rows: int
    replayed_rows: int
    differences: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.differences


class _Rollback(Exception):
    pass


def _rows(projection: Projection) -> dict[str, dict[Any, dict[str, Any]]]:
    return {
        model._meta.label: {row.pk: model_to_dict(row) for row in model._default_manager.all()}
        for model in projection.read_models
    }


def verify(names: list[str] | None = None, max_differences: int = 20) -> list[Verification]:
    """Compare each projection's live rows with a fresh replay of the log up to its checkpoint.

    The replay runs inside a transaction that is always rolled back, so verifying never
    changes anything. REPEATABLE READ gives the live rows and the replay one snapshot.
    """
    results: list[Verification] = []
    for projection in get_projections():
        if names and projection.name not in names:
            continue
        outermost = not connection.in_atomic_block
        try:
            with transaction.atomic():
                if outermost:  # only the first statement of a transaction may set this
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                ensure_checkpoints()
                state = ProjectionState.objects.get(name=projection.name)
                live = _rows(projection)
                for model in projection.read_models:
                    model._default_manager.all().delete()
                ProjectionState.objects.filter(name=projection.name).update(
                    position=0, status=ProjectionStatus.RUNNING, failures=0, retry_at=None
                )
                while True:
                    outcome = run_projection(projection, upto=state.position)
                    if outcome.outcome != "progress":
                        break
                replayed = _rows(projection)
                raise _Rollback
        except _Rollback:
            pass
        differences: list[dict[str, Any]] = []
        for label in live:
            for pk in sorted(set(live[label]) | set(replayed[label]), key=str):
                a, b = live[label].get(pk), replayed[label].get(pk)
                if a != b and len(differences) < max_differences:
                    differences.append({"model": label, "pk": str(pk), "live": a, "replayed": b})
        results.append(
            Verification(
                projection=projection.name,
                checkpoint=state.position,
                live_rows=sum(len(rows) for rows in live.values()),
                replayed_rows=sum(len(rows) for rows in replayed.values()),
                differences=differences,
            )
        )
    return results
