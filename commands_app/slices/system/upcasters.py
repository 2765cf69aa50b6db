"""Upcasters: (event type, from version) -> pure function to the next payload version.

Stored events are never rewritten; every read path (aggregate loading, projections,
rebuilds, the events API) chains these from the stored version to the current one.
Snapshot upcasters do the same for the System aggregate's snapshot state.
"""

from __future__ import annotations

from typing import Any

from commands_app.domain.registry import SnapshotUpcaster, Upcaster


def message_logged_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v2 renamed `message` (the reference's name) to `text`."""
    payload["text"] = payload.pop("message")
    return payload


def message_logged_v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """v3 added `level`; every message logged before levels existed was plain info."""
    payload.setdefault("level", "info")
    return payload


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("messageLogged", 1): message_logged_v1_to_v2,
    ("messageLogged", 2): message_logged_v2_to_v3,
}


def system_state_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """v2 counts messages per level; before levels existed every message was info."""
    logged = state.get("messages_logged", 0)
    state["messages_by_level"] = {"info": logged} if logged else {}
    return state


SNAPSHOT_UPCASTERS: dict[tuple[str, int], SnapshotUpcaster] = {
    ("system", 1): system_state_v1_to_v2,
}
