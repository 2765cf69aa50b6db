"""Upcasters of the banking slice: none yet, every event and snapshot is at version 1.

When a payload or the Account/Transfer fields change shape, bump the event's
SCHEMA_VERSION (or the aggregate's SNAPSHOT_SCHEMA_VERSION) and add the step here, as
system/upcasters.py does.
"""

from __future__ import annotations

from commands_app.domain.registry import SnapshotUpcaster, Upcaster

UPCASTERS: dict[tuple[str, int], Upcaster] = {}

SNAPSHOT_UPCASTERS: dict[tuple[str, int], SnapshotUpcaster] = {}
