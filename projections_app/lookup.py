"""The read side's consumers looked up by name, and the refusal an operator action raises.

A leaf module: the operator actions (operations.py), the rebuild beside them and the API
all use it, and it imports none of them.
"""

from __future__ import annotations

from commands_app.domain.errors import IntentError
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
