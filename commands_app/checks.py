"""Start-up checks: the registry and the projections must be consistent before we serve."""

from __future__ import annotations

from typing import Any

from django.core import checks

from commands_app.registry import get_registry

_HINTS = {
    "intent.E001": "Each command type must map to exactly one handler in one slice's COMMAND_HANDLERS.",
    "intent.E002": "Event type names are global across slices; rename one of them.",
    "intent.E003": "Aggregate TYPE names are global across slices; rename one of them.",
    "intent.E004": "Set AGGREGATE_TYPE on the command to a registered aggregate's TYPE.",
    "intent.E005": "Add a handler for the command or remove it from the slice's ACCESS.",
    "intent.E006": "Keep one upcaster per (event type, from-version).",
    "intent.E007": "Remove the upcaster or register the event type.",
    "intent.E008": "Upcasters go from v1 up to SCHEMA_VERSION-1.",
    "intent.E009": "Chains must be contiguous: add the missing upcaster (v -> v+1).",
}


@checks.register()
def registry_is_consistent(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(message, hint=_HINTS.get(check_id), id=check_id)
        for check_id, message in get_registry().problems()
    ]
