"""One flow's commands and events as a causation tree.

Every command and event of a flow carries the flow's correlation id. The links:
- an event was recorded by a command (`Event.command_id`);
- a command was caused by an event or a command a saga reacted to (`Command.causation_id`),
  or by nothing (a client sent it).
So a tree reads command → events → (saga) → commands → events …, in one tenant schema.

A reader sees only the messages the read policy lets it see; a message whose parent it
may not see hangs at the root, and a flow with nothing visible does not exist for it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from commands_app.models import Command
from commands_app.read_policy import Reader, visible_commands, visible_events
from commands_app.registry import get_registry
from events_app.models import Event
from events_app.personal import Keyring
from intent_project.admin_html import short_id, status_badge

# A flow is a conversation, not a log: past this many messages the tree is cut (and says so).
MAX_NODES = 2000


def trace(correlation_id: UUID, reader: Reader) -> dict[str, Any] | None:
    """The flow's tree as `reader` may see it, or None when no command or event it may see
    carries this correlation id."""
    commands = list(
        Command.objects.filter(visible_commands(reader), correlation_id=correlation_id)
        .order_by("created_at", "id")
        .values(
            "id",
            "type",
            "status",
            "causation_id",
            "aggregate_type",
            "aggregate_id",
            "metadata",
            "error",
            "not_before",
            "created_at",
            "processed_at",
        )[: MAX_NODES + 1]
    )
    events = list(
        Event.objects.filter(visible_events(reader), correlation_id=correlation_id)
        .order_by("position")
        .values(
            "id",
            "position",
            "type",
            "schema_version",
            "stream_type",
            "stream_id",
            "version",
            "command_id",
            "causation_id",
            "recorded_at",
        )[: MAX_NODES + 1]
    )
    if not commands and not events:
        return None
    truncated = len(commands) > MAX_NODES or len(events) > MAX_NODES
    commands, events = commands[:MAX_NODES], events[:MAX_NODES]

    nodes: dict[UUID, dict[str, Any]] = {}
    for row in commands:
        meta = row["metadata"] or {}
        nodes[row["id"]] = {
            "kind": "command",
            "id": str(row["id"]),
            "type": row["type"],
            "status": row["status"],
            "aggregate_type": row["aggregate_type"],
            "aggregate_id": str(row["aggregate_id"]) if row["aggregate_id"] else None,
            "source": meta.get("source"),
            "saga": meta.get("saga"),
            "causation_id": str(row["causation_id"]) if row["causation_id"] else None,
            "error": row["error"],
            "not_before": row["not_before"],
            "created_at": row["created_at"],
            "processed_at": row["processed_at"],
            "children": [],
        }
    for ev in events:
        nodes[ev["id"]] = {
            "kind": "event",
            "id": str(ev["id"]),
            "type": ev["type"],
            "position": ev["position"],
            "aggregate_type": ev["stream_type"],
            "aggregate_id": str(ev["stream_id"]),
            "version": ev["version"],
            "causation_id": str(ev["causation_id"]) if ev["causation_id"] else None,
            "command_id": str(ev["command_id"]) if ev["command_id"] else None,
            "recorded_at": ev["recorded_at"],
            "children": [],
        }

    roots: list[dict[str, Any]] = []
    # Events first under their command (log order), then the commands sagas issued
    # (creation order) under their cause.
    for ev in events:
        parent = nodes.get(ev["command_id"]) if ev["command_id"] else None
        (parent["children"] if parent is not None else roots).append(nodes[ev["id"]])
    for row in commands:
        parent = nodes.get(row["causation_id"]) if row["causation_id"] else None
        if parent is not None and parent is not nodes[row["id"]]:
            parent["children"].append(nodes[row["id"]])
        else:
            roots.append(nodes[row["id"]])
    roots.sort(key=_when)
    return {
        "correlation_id": str(correlation_id),
        "commands": len(commands),
        "events": len(events),
        "truncated": truncated,
        "roots": roots,
    }


def _when(node: dict[str, Any]) -> Any:
    return node.get("created_at") or node.get("recorded_at")


# -- admin rendering -------------------------------------------------------------------------------
def tree_html(correlation_id: UUID | None, reader: Reader, highlight: UUID | None = None) -> SafeString | str:
    """The flow as `reader` may see it, as nested lists linking to each message's admin page."""
    if correlation_id is None:
        return "—"
    flow = trace(correlation_id, reader)
    if flow is None:
        return "—"
    cut = format_html("<p>Cut at {} messages.</p>", MAX_NODES) if flow["truncated"] else ""
    return format_html(
        '<div class="intent-trace">{}<ul>{}</ul><p><a href="{}">this flow as JSON (API)</a></p></div>',
        cut,
        _items(flow["roots"], str(highlight) if highlight else ""),
        reverse("trace", args=[correlation_id]),
    )


def _items(nodes: list[dict[str, Any]], highlight: str) -> SafeString:
    return format_html_join(
        "", "<li>{}{}</li>", ((_label(n, highlight), _children(n, highlight)) for n in nodes)
    )


def _children(node: dict[str, Any], highlight: str) -> SafeString | str:
    if not node["children"]:
        return ""
    return format_html("<ul>{}</ul>", _items(node["children"], highlight))


def _label(node: dict[str, Any], highlight: str) -> SafeString:
    """One line of the tree: kind, linked type, short id (full on hover), status or place."""
    if node["kind"] == "command":
        url = reverse("admin:commands_app_command_change", args=[node["id"]])
        origin = (
            f"from saga {node['saga']}"
            if node.get("saga")
            else (f"from {node['source']}" if node.get("source") else "")
        )
        text = format_html(
            '<span class="kind">command</span><a href="{}">{}</a> {} {} <span class="intent-muted">{}</span>',
            url,
            node["type"],
            short_id(node["id"]),
            status_badge(node["status"]),
            origin,
        )
    else:
        url = reverse("admin:events_app_event_change", args=[node["position"]])
        text = format_html(
            '<span class="kind">event</span><a href="{}">{}</a> <span class="intent-muted">#{} on {} {} v{}</span>',
            url,
            node["type"],
            node["position"],
            node["aggregate_type"],
            short_id(node["aggregate_id"]),
            node["version"],
        )
    if node["id"] == highlight:
        return format_html('<span class="node current" aria-current="true">{}</span>', text)
    return format_html('<span class="node">{}</span>', text)


def current_payload(
    type_name: str, schema_version: int, payload: dict[str, Any], keys: Keyring | None = None
) -> dict[str, Any]:
    """A stored payload, its personal data opened, upcast to its event type's current
    schema (unknown types as stored). `keys`: a keyring prefetched for a page of events."""
    registry = get_registry()
    if type_name not in registry.events:
        return dict(payload)
    opened = (keys or Keyring(registry)).reveal("event", type_name, payload)
    return registry.upcast(type_name, schema_version, opened)
