from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from commands_app.read_policy import Reader, visible_aggregate_types, visible_events
from commands_app.registry import get_registry
from events_app.models import Event, Snapshot
from events_app.traces import current_payload, tree_html
from intent_project.admin_html import short_id, when
from intent_project.admin_sites import TenantReadOnlyAdmin, object_reader, pretty_json, tenant_admin_site


class OfCommand(admin.SimpleListFilter):
    """?command=<id>: the events one command recorded (linked from the command's page)."""

    title = "command"
    parameter_name = "command"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value[:8])] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        try:
            return queryset.filter(command_id=uuid.UUID(self.value()))
        except ValueError:
            return queryset.none()


@admin.register(Event, site=tenant_admin_site)
class EventAdmin(TenantReadOnlyAdmin):
    """Events are immutable: read-only here, and a database trigger refuses UPDATE/DELETE."""

    list_display = ("position", "type", "aggregate", "version", "command", "recorded")
    list_filter = ("type", "stream_type", OfCommand)
    search_fields = ("id",)  # shows the box; get_search_results decides what a term matches
    search_help_text = (
        "A position, a whole id (of the event, its aggregate, its command or its flow's "
        "correlation id) or an event type (moneyDeposited)."
    )
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

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(position=int(term)), False
        try:
            as_uuid = uuid.UUID(term)
        except ValueError:
            types = {name.casefold(): name for name in get_registry().events}
            if term.casefold() in types:
                return queryset.filter(type=types[term.casefold()]), False
            return queryset.none(), False
        match = Q(id=as_uuid) | Q(stream_id=as_uuid) | Q(correlation_id=as_uuid) | Q(command_id=as_uuid)
        return queryset.filter(match), False

    @admin.display(description="aggregate", ordering="stream_id")
    def aggregate(self, obj: Event) -> Any:
        return format_html("{} {}", obj.stream_type, short_id(obj.stream_id))

    @admin.display(description="command")
    def command(self, obj: Event) -> Any:
        return short_id(obj.command_id)

    @admin.display(description="recorded (UTC)", ordering="position")
    def recorded(self, obj: Event) -> str:
        return when(obj.recorded_at)

    @admin.display(description="payload (upcast to the current schema, personal data opened)")
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
