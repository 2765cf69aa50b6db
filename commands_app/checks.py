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
    "intent.E010": "Keep one snapshot upcaster per (aggregate type, from-version).",
    "intent.E011": "Remove the snapshot upcaster or register the aggregate.",
    "intent.E012": "Snapshot upcasters go from v1 up to SNAPSHOT_SCHEMA_VERSION-1.",
    "intent.E013": "Internal commands are issued by sagas only; remove them from the role's access.",
    "intent.E014": "Saga names are global across slices (they name checkpoints); rename one.",
    "intent.E015": "Register the event type in a slice, or remove the reaction.",
    "intent.E016": "Register the command type in a slice, or remove the reaction.",
    "intent.E017": "A read model belongs to one slice; declare it in one slice's READS only.",
    "intent.E018": "Name the row field holding the reader's user id (own_field=...) or drop own_rows.",
    "intent.E019": "A role reads all rows or its own rows, not both; remove it from one set.",
    "intent.W020": "Add READS = SliceReads(...) beside the slice's ACCESS in access.py.",
    "intent.E021": "Name the field as the message or aggregate declares it (its Python name) in personal.py.",
    "intent.E022": "An aggregate's personal state is its own subject's: drop subject= for the aggregate.",
    "intent.E023": "Declare personal data in the slice that registers the command, event or aggregate.",
    "intent.E024": "A personal field must accept the placeholder '[erased]': a str field, long enough.",
}


@checks.register()
def registry_is_consistent(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        (checks.Warning if check_id.startswith("intent.W") else checks.Error)(
            message, hint=_HINTS.get(check_id), id=check_id
        )
        for check_id, message in get_registry().problems()
    ]
