from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from commands_app import operations
from commands_app.models import Command
from commands_app.read_policy import Reader, visible_commands
from events_app.traces import tree_html
from intent_project.admin_sites import (
    TenantReadOnlyAdmin,
    object_reader,
    pretty_json,
    run_operator_action,
    tenant_admin_site,
)


@admin.register(Command, site=tenant_admin_site)
class CommandAdmin(TenantReadOnlyAdmin):
    list_display = (
        "id",
        "type",
        "status",
        "attempts",
        "aggregate_id",
        "created_at",
        "processed_at",
    )
    list_filter = ("status", "type")
    search_fields = ("=id", "=aggregate_id", "=correlation_id")
    date_hierarchy = None
    ordering = ("-created_at",)
    fields = (
        "id",
        "type",
        "status",
        "attempts",
        "aggregate_type",
        "aggregate_id",
        "correlation_id",
        "causation_id",
        "flow",
        "payload_pretty",
        "metadata_pretty",
        "result_pretty",
        "events_link",
        "error_pretty",
        "not_before",
        "created_at",
        "updated_at",
        "processed_at",
    )
    readonly_fields = fields
    actions = ["retry_failed"]

    def visible_rows(self, reader: Reader) -> Q:
        return visible_commands(reader)

    @admin.action(description="Retry the selected failed commands")
    def retry_failed(self, request: HttpRequest, queryset: Any) -> None:
        run_operator_action(
            self,
            request,
            queryset,
            lambda command, by: operations.retry(command.id, by=by),
            "Retried",
        )

    @admin.display(description="payload")
    def payload_pretty(self, obj: Command) -> Any:
        return pretty_json(obj.payload)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj: Command) -> Any:
        return pretty_json(obj.metadata)

    @admin.display(description="result")
    def result_pretty(self, obj: Command) -> Any:
        return pretty_json(obj.result)

    @admin.display(description="events")
    def events_link(self, obj: Command) -> Any:
        count = len((obj.result or {}).get("events", []))
        if not count:
            return "—"
        url = reverse("admin:events_app_event_changelist", current_app=self.admin_site.name)
        return format_html('<a href="{}?q={}">{} event(s) of this command</a>', url, obj.id, count)

    @admin.display(description="flow (causation tree)")
    def flow(self, obj: Command) -> Any:
        return tree_html(obj.correlation_id, object_reader(obj), highlight=obj.id)

    @admin.display(description="error")
    def error_pretty(self, obj: Command) -> Any:
        return pretty_json(obj.error)
