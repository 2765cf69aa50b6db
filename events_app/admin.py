from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q

from commands_app.read_policy import Reader, visible_aggregate_types, visible_events
from events_app.models import Event, Snapshot
from events_app.traces import current_payload, tree_html
from intent_project.admin_sites import TenantReadOnlyAdmin, object_reader, pretty_json, tenant_admin_site


@admin.register(Event, site=tenant_admin_site)
class EventAdmin(TenantReadOnlyAdmin):
    """Events are immutable: read-only here, and a database trigger refuses UPDATE/DELETE."""

    list_display = ("position", "type", "stream_type", "stream_id", "version", "recorded_at")
    list_filter = ("type", "stream_type")
    search_fields = ("=id", "=stream_id", "=correlation_id", "=command_id")
    ordering = ("-position",)
    fields = (
        "position",
        "id",
        "type",
        "schema_version",
        "stream_type",
        "stream_id",
        "version",
        "payload_current",
        "payload_pretty",
        "metadata_pretty",
        "correlation_id",
        "causation_id",
        "command_id",
        "flow",
        "recorded_at",
    )
    readonly_fields = fields

    def visible_rows(self, reader: Reader) -> Q:
        return visible_events(reader)

    @admin.display(description="payload (upcast to the current schema)")
    def payload_current(self, obj: Event) -> Any:
        return pretty_json(current_payload(obj.type, obj.schema_version, obj.payload))

    @admin.display(description="payload (as stored)")
    def payload_pretty(self, obj: Event) -> Any:
        return pretty_json(obj.payload)

    @admin.display(description="flow (causation tree)")
    def flow(self, obj: Event) -> Any:
        return tree_html(obj.correlation_id, object_reader(obj), highlight=obj.id)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj: Event) -> Any:
        return pretty_json(obj.metadata)


@admin.register(Snapshot, site=tenant_admin_site)
class SnapshotAdmin(TenantReadOnlyAdmin):
    list_display = ("stream_type", "stream_id", "version", "schema_version", "created_at")
    list_filter = ("stream_type",)
    search_fields = ("=stream_id",)
    fields = ("stream_type", "stream_id", "version", "schema_version", "state_pretty", "created_at")
    readonly_fields = fields

    def visible_rows(self, reader: Reader) -> Q:
        return visible_aggregate_types(reader)

    @admin.display(description="state")
    def state_pretty(self, obj: Snapshot) -> Any:
        return pretty_json(obj.state)
