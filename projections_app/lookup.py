"""The read side's consumers and their checkpoints looked up by name, and the refusal an
operator action raises. A leaf module: the operator actions (operations.py), the rebuild
beside them and the API all use it, and it imports none of them.

Reading a checkpoint never writes. Checkpoint rows are created with the tenant and by the
workers before they run (runner.ensure_checkpoints); a consumer whose row does not exist
yet reads as it would start: position 0, running.
"""

from __future__ import annotations

from commands_app.domain.errors import IntentError
from projections_app.models import ProjectionState
from projections_app.projectors.base import Projection
from projections_app.registry import get_consumer, get_consumers


class OperationRefused(IntentError):
    code = "operation_refused"


def projection_named(name: str) -> Projection:
    projection = get_consumer(name)
    if projection is None:
        raise IntentError(
            f"No projection or saga '{name[:80]}'.",
            code="not_found",
            details={"known": [p.name for p in get_consumers()]},
        )
    return projection


def _not_started(projection: Projection) -> ProjectionState:
    return ProjectionState(
        name=projection.name, version=projection.version, fingerprint=projection.fingerprint
    )


def checkpoint(projection: Projection) -> ProjectionState:
    """`projection`'s checkpoint row, or an unsaved one at position 0 if it has none yet."""
    return ProjectionState.objects.filter(name=projection.name).first() or _not_started(projection)


def checkpoints() -> dict[str, ProjectionState]:
    """Every consumer's checkpoint (one query), as `checkpoint` reads it."""
    stored = {state.name: state for state in ProjectionState.objects.all()}
    return {p.name: stored.get(p.name) or _not_started(p) for p in get_consumers()}
