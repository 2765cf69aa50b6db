from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from commands_app import operations
from commands_app.domain.errors import IntentError
from commands_app.models import Command, CommandStatus
from commands_app.read_policy import Reader, visible_commands
from commands_app.registry import get_registry
from events_app.personal import reveal_one
from events_app.traces import tree_html
from intent_project.admin_html import short_id, status_badge, when
from intent_project.admin_sites import (
    ObjectAction,
    ObjectActionsAdmin,
    admin_reader,
    object_reader,
    pretty_json,
    run_operator_action,
    tenant_admin_site,
)
from intent_project.tenancy import refuse_commands_if_suspended
from intent_project.tenants.services import members_of

RECENT_FAILURES = 5000


class CreatedWithin(admin.SimpleListFilter):
    """Recent ranges: `created_at >= now - range`, served by the (status|type, created_at)
    indexes and the created_at index, where a date hierarchy would scan every row for its
    distinct dates."""

    title = "created"
    parameter_name = "created"
    RANGES = {
        "15m": ("last 15 minutes", 15),
        "1h": ("last hour", 60),
        "24h": ("last 24 hours", 1440),
        "7d": ("last 7 days", 10080),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.RANGES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        chosen = self.RANGES.get(self.value() or "")
        if chosen is None:
            return queryset
        return queryset.filter(created_at__gte=timezone.now() - timedelta(minutes=chosen[1]))


class ErrorCodeFilter(admin.SimpleListFilter):
    """The error codes of recent failed commands (choosing one narrows to failed commands)."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The codes of the latest failures (on the status index), not a DISTINCT over all of them.
        failed = model_admin.get_queryset(request).filter(status=CommandStatus.FAILED)
        codes = set(failed.order_by("-created_at").values_list("error__code", flat=True)[:RECENT_FAILURES])
        return [(code, code) for code in sorted(c for c in codes if isinstance(c, str))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        return queryset.filter(status=CommandStatus.FAILED, error__code=self.value())


class SentByFilter(admin.SimpleListFilter):
    """The tenant's members, for roles that may read everyone's commands (others see only
    their own, and the member list is not theirs to read)."""

    title = "sent by"
    parameter_name = "user"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        if not admin_reader(request).reads_everything:
            return []
        return [(str(user.pk), user.get_username()) for user in members_of(request.tenant)]  # type: ignore[attr-defined]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        return queryset.filter(metadata__user_id=self.value())


def _retry(command: Command, by: Any) -> Command:
    return operations.retry(command.id, by=by)


def _suspended(request: HttpRequest) -> str:
    """Why no command may be sent from this request's tenant now, or ""."""
    try:
        refuse_commands_if_suspended(getattr(request, "tenant", None))
    except IntentError as exc:
        return exc.message
    return ""


def _retry_from_page(request: HttpRequest, command: Command) -> None:
    admin_ = tenant_admin_site.get_model_admin(Command)
    if reason := _suspended(request):
        admin_.message_user(request, reason, messages.ERROR)
        return
    run_operator_action(admin_, request, [command], _retry, "Retried (sent again)")


def _as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


@admin.register(Command, site=tenant_admin_site)
class CommandAdmin(ObjectActionsAdmin):
    list_display = (
        "short",
        "type",
        "status_shown",
        "error_code",
        "sent_by",
        "aggregate",
        "created",
        "processed",
    )
    list_filter = ("status", "type", ErrorCodeFilter, SentByFilter, CreatedWithin)
    search_help_text = (
        "A whole id (of the command, its aggregate or its flow's correlation id), a command type "
        "(transferMoney) or a username."
    )
    search_fields = ("id",)  # shows the box; get_search_results decides what a term matches
    ordering = ("-created_at",)
    change_form_template = "admin/intent/command_change_form.html"
    fields = (
        "id",
        "type",
        "status_shown",
        "attempts",
        "aggregate_type",
        "aggregate_id",
        "correlation_id",
        "causation_id",
        "sent_by",
        "flow",
        "payload_pretty",
        "metadata_pretty",
        "result_pretty",
        "events_link",
        "error_pretty",
        "not_before",
        "created",
        "updated",
        "processed",
    )
    readonly_fields = fields
    actions = ["retry_failed"]
    object_actions = (
        ObjectAction(
            "retry",
            "Retry",
            _retry_from_page,
            shown=lambda command: command.status == CommandStatus.FAILED,
        ),
    )

    def visible_rows(self, reader: Reader) -> Q:
        return visible_commands(reader)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        term = search_term.strip()
        if not term:
            return queryset, False
        as_uuid = _as_uuid(term)
        if as_uuid is not None:
            match = Q(pk=as_uuid) | Q(aggregate_id=as_uuid) | Q(correlation_id=as_uuid)
            return queryset.filter(match), False
        types = {name.casefold(): name for name in get_registry().commands}
        if term.casefold() in types:
            return queryset.filter(type=types[term.casefold()]), False
        user = get_user_model().objects.filter(username=term).first()
        if user is not None:
            return queryset.filter(metadata__user_id=str(user.pk)), False
        return queryset.none(), False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        command = self.get_object(request, unquote(object_id))
        context = {
            **(extra_context or {}),
            "stream_url": reverse("command-stream", args=[command.pk]) if command is not None else "",
            "is_final": command is None or command.is_final,
        }
        return super().change_view(request, object_id, form_url, context)

    @admin.action(description="Retry the selected failed commands")
    def retry_failed(self, request: HttpRequest, queryset: Any) -> None:
        failed = [command for command in queryset if command.status == CommandStatus.FAILED]
        if len(failed) < len(queryset):
            self.message_user(
                request,
                f"{len(queryset) - len(failed)} selected command(s) had not failed; only failed ones are retried.",
                messages.WARNING,
            )
        if reason := _suspended(request):
            self.message_user(request, reason, messages.ERROR)
            return
        run_operator_action(self, request, failed, _retry, "Retried")

    @admin.display(description="id", ordering="id")
    def short(self, obj: Command) -> Any:
        return short_id(obj.id)

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: Command) -> Any:
        return format_html('<span data-command-status="{}">{}</span>', obj.status, status_badge(obj.status))

    @admin.display(description="error")
    def error_code(self, obj: Command) -> str:
        return (obj.error or {}).get("code") or "—"

    @admin.display(description="sent by")
    def sent_by(self, obj: Command) -> str:
        metadata = obj.metadata or {}
        return metadata.get("username") or metadata.get("saga") or "—"

    @admin.display(description="aggregate")
    def aggregate(self, obj: Command) -> Any:
        if obj.aggregate_id is None:
            return obj.aggregate_type or "—"
        return format_html("{} {}", obj.aggregate_type, short_id(obj.aggregate_id))

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Command) -> str:
        return when(obj.created_at)

    @admin.display(description="updated (UTC)", ordering="updated_at")
    def updated(self, obj: Command) -> str:
        return when(obj.updated_at)

    @admin.display(description="processed (UTC)", ordering="processed_at")
    def processed(self, obj: Command) -> str:
        return when(obj.processed_at)

    @admin.display(description="payload")
    def payload_pretty(self, obj: Command) -> Any:
        # Personal data is stored sealed; the page shows it opened (or erased).
        return pretty_json(reveal_one("command", obj.type, obj.payload))

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
        return format_html('<a href="{}?command={}">{} event(s) of this command</a>', url, obj.id, count)

    @admin.display(description="flow (causation tree)")
    def flow(self, obj: Command) -> Any:
        return tree_html(obj.correlation_id, object_reader(obj), highlight=obj.id)

    @admin.display(description="error")
    def error_pretty(self, obj: Command) -> Any:
        return pretty_json(obj.error)
