"""Upcasters of the banking slice: (event type, from version) -> the next payload version.

When a payload or the Account/Transfer fields change shape, bump the event's
SCHEMA_VERSION (or the aggregate's SNAPSHOT_SCHEMA_VERSION) and add the step here, as
system/upcasters.py does. Stored events are never rewritten.
"""

from __future__ import annotations

from typing import Any

from commands_app.domain.registry import SnapshotUpcaster, Upcaster


def debit_declined_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v2 added `currency`; a decline recorded before it names none (the transfers read
    model then keeps the one the transfer request named, if any)."""
    payload.setdefault("currency", None)
    return payload


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("accountDebitDeclined", 1): debit_declined_v1_to_v2,
}

SNAPSHOT_UPCASTERS: dict[tuple[str, int], SnapshotUpcaster] = {}
