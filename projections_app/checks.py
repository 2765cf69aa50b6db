"""Start-up checks for projections and sagas: unique names, known event types, exposed models."""

from __future__ import annotations

from typing import Any

from django.core import checks

from commands_app.registry import get_registry
from projections_app.registry import get_projections, get_read_models, get_sagas


@checks.register()
def projections_are_consistent(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    known_events = get_registry().events
    seen: set[str] = set()
    for projection in get_projections():
        if projection.name in seen:
            errors.append(
                checks.Error(
                    f"projection '{projection.name}' is declared twice",
                    id="intent.E101",
                    hint="Projection names are the checkpoint keys; they must be unique.",
                )
            )
        seen.add(projection.name)
        for event_type in projection.event_types:
            if event_type not in known_events:
                errors.append(
                    checks.Error(
                        f"projection '{projection.name}' handles unknown event type '{event_type}'",
                        id="intent.E102",
                        hint="Register the event in a slice or drop the handler.",
                    )
                )
    for saga in get_sagas():
        if saga.name in seen:
            errors.append(
                checks.Error(
                    f"saga '{saga.name}' has the name of a projection",
                    id="intent.E104",
                    hint="Sagas and projections share the checkpoint table; rename the saga.",
                )
            )
    for name, read_model in get_read_models().items():
        if read_model.projection not in seen:
            errors.append(
                checks.Error(
                    f"read model '{name}' names unknown projection '{read_model.projection}'",
                    id="intent.E103",
                    hint="Point it at a projection declared in PROJECTIONS.",
                )
            )
    return errors
