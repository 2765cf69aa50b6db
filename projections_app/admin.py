from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

from commands_app.operations import OperatorRequired
from commands_app.read_policy import Reader, read_model_scope, visible_sagas
from events_app.traces import tree_html
from intent_project import admin_pages
from intent_project.admin_sites import (
    ObjectAction,
    ObjectActionsAdmin,
    TenantReadOnlyAdmin,
    admin_operator,
    admin_reader,
    confirm_first,
    object_reader,
    operator_action,
    pretty_json,
    run_operator_action,
    tenant_admin_site,
)
from intent_project.tenancy import current_schema
from projections_app import operations
from projections_app.models import DeadLetter, ProjectionState, RebuildJob, SagaInstance
from projections_app.projectors.base import ReadModel
from projections_app.registry import get_consumer, get_read_models
from projections_app.runner import head_position

SKIP_QUESTION = (
    "The event the projection is stuck on moves to a dead letter, and the projection goes on without it: "
    "its read model lacks what that event says until the dead letter is replayed."
)
REBUILD_QUESTION = (
    "A worker rebuilds the projection from the whole log beside the live version, then swaps it in. The "
    "live version keeps answering until then; the rebuild can be cancelled under Rebuild jobs."
)
REPAIR_QUESTION = (
    "A worker applies this tenant's pending migrations and rebuilds every projection whose tables or code "
    "drifted."
)


def _check_drift(request: HttpRequest, obj: Any = None) -> None:
    """Drift is a property of the tenant's schema: one check whatever was selected."""
    admin_ = tenant_admin_site.get_model_admin(ProjectionState)
    try:
        findings = operations.check_drift(current_schema(), by=admin_operator(request))
    except OperatorRequired as exc:
        admin_.message_user(request, exc.message, messages.ERROR)
        return
    if not findings:
        admin_.message_user(
            request, "No drift: tables, migrations and projection code all match.", messages.SUCCESS
        )
    for finding in findings:
        admin_.message_user(request, f"{finding.kind}: {finding.message}", messages.WARNING)


def _repair(request: HttpRequest, obj: Any = None) -> None:
    admin_ = tenant_admin_site.get_model_admin(ProjectionState)
    try:
        operations.request_repair(current_schema(), by=admin_operator(request))
    except OperatorRequired as exc:
        admin_.message_user(request, exc.message, messages.ERROR)
        return
    admin_.message_user(request, "Repair queued; see Rebuild jobs for progress.", messages.SUCCESS)


@admin.register(ProjectionState, site=tenant_admin_site)
class ProjectionStateAdmin(ObjectActionsAdmin):
    list_display = (
        "name",
        "kind",
        "version",
        "current_code",
        "status",
        "position",
        "lag",
        "failures",
        "updated_at",
    )
    list_filter = ("status",)
    fields = (
        "name",
        "kind",
        "version",
        "current_code",
        "status",
        "position",
        "lag",
        "failures",
        "error_pretty",
        "retry_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["resume", "skip", "rebuild", "check_drift", "repair"]
    object_actions = (
        ObjectAction(
            "resume",
            "Resume",
            operator_action(lambda state, by: operations.resume(state.name, by=by), "Resumed"),
            shown=lambda state: (
                state.status == "stalled" or bool(state.failures) or state.retry_at is not None
            ),
        ),
        ObjectAction(
            "skip",
            "Skip the failing event",
            operator_action(lambda state, by: operations.skip(state.name, by=by), "Skipped to a dead letter"),
            confirm=SKIP_QUESTION,
            shown=lambda state: state.status == "stalled",
        ),
        ObjectAction(
            "rebuild",
            "Rebuild",
            operator_action(
                lambda state, by: operations.request_rebuild(state.name, by=by),
                "Rebuild queued (progress under Rebuild jobs)",
            ),
            confirm=REBUILD_QUESTION,
        ),
        ObjectAction("check-drift", "Check drift", _check_drift),
        ObjectAction(
            "repair",
            "Repair",
            _repair,
            confirm=REPAIR_QUESTION,
        ),
    )

    @admin.display(description="kind")
    def kind(self, obj: ProjectionState) -> str:
        consumer = get_consumer(obj.name)
        return consumer.KIND if consumer is not None else "unknown"

    @admin.display(description="built by current code", boolean=True)
    def current_code(self, obj: ProjectionState) -> bool | None:
        projection = get_consumer(obj.name)
        if projection is None:
            return None
        return obj.version == projection.version and obj.fingerprint == projection.fingerprint

    @admin.action(description="Rebuild beside the live version, then swap (runs on a worker)")
    @confirm_first(REBUILD_QUESTION)
    def rebuild(self, request: HttpRequest, queryset: Any) -> None:
        run_operator_action(
            self,
            request,
            queryset,
            lambda state, by: operations.request_rebuild(state.name, by=by),
            "Rebuild queued (progress under Rebuild jobs)",
        )

    @admin.action(description="Check this tenant's schema for drift")
    def check_drift(self, request: HttpRequest, queryset: Any) -> None:
        _check_drift(request)

    @admin.action(
        description="Repair this tenant: apply migrations, rebuild drifted projections (on a worker)"
    )
    @confirm_first(REPAIR_QUESTION)
    def repair(self, request: HttpRequest, queryset: Any) -> None:
        _repair(request)

    @admin.action(description="Resume: retry the event the projection stopped at")
    def resume(self, request: HttpRequest, queryset: Any) -> None:
        run_operator_action(
            self, request, queryset, lambda state, by: operations.resume(state.name, by=by), "Resumed"
        )

    @admin.action(description="Skip: move the failing event to a dead letter and go on")
    @confirm_first(SKIP_QUESTION)
    def skip(self, request: HttpRequest, queryset: Any) -> None:
        run_operator_action(
            self, request, queryset, lambda state, by: operations.skip(state.name, by=by), "Skipped"
        )

    @admin.display(description="lag (positions)")
    def lag(self, obj: ProjectionState) -> int:
        return max(head_position() - obj.position, 0)

    @admin.display(description="last error")
    def error_pretty(self, obj: ProjectionState) -> Any:
        return pretty_json(obj.last_error)


@admin.register(DeadLetter, site=tenant_admin_site)
class DeadLetterAdmin(TenantReadOnlyAdmin):
    list_display = (
        "projection",
        "event_type",
        "position",
        "event_id",
        "skipped_by",
        "created_at",
        "replayed_at",
    )
    list_filter = ("projection", "event_type")
    fields = (
        "projection",
        "event_type",
        "position",
        "event_id",
        "error_pretty",
        "skipped_by",
        "created_at",
        "replayed_at",
    )
    readonly_fields = fields
    actions = ["replay"]

    @admin.display(description="error")
    def error_pretty(self, obj: DeadLetter) -> Any:
        return pretty_json(obj.error)

    @admin.action(description="Replay: apply the skipped event now")
    def replay(self, request: HttpRequest, queryset: Any) -> None:
        run_operator_action(
            self,
            request,
            queryset,
            lambda letter, by: operations.replay_dead_letter(letter.pk, by=by),
            "Replayed",
        )


@admin.register(RebuildJob, site=tenant_admin_site)
class RebuildJobAdmin(TenantReadOnlyAdmin):
    list_display = (
        "projection",
        "version",
        "status",
        "progress",
        "events_per_second",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "projection")
    fields = (
        "projection",
        "version",
        "status",
        "events_done",
        "events_total",
        "events_per_second",
        "position",
        "error",
        "started_at",
        "updated_at",
        "finished_at",
    )
    readonly_fields = fields
    actions = ["cancel"]

    @admin.display(description="progress")
    def progress(self, obj: RebuildJob) -> str:
        if not obj.events_total:
            return "—"
        return f"{obj.events_done:,}/{obj.events_total:,} ({100 * obj.events_done / obj.events_total:.0f}%)"

    @admin.action(description="Cancel (the live version stays untouched)")
    def cancel(self, request: HttpRequest, queryset: Any) -> None:
        run_operator_action(
            self,
            request,
            queryset,
            lambda job, by: operations.cancel_rebuild(job.projection, by=by),
            "Cancel requested",
        )


class ReadModelAdmin(TenantReadOnlyAdmin):
    """One read model, read-only, as the read policy lets the caller's role see it: only its
    rows, and without its redacted fields (left out of lists and pages altogether)."""

    read_model_name: str = ""
    field_names: tuple[str, ...] = ()

    def readable(self, reader: Reader) -> bool:
        return read_model_scope(reader, self.read_model_name).allowed

    def visible_rows(self, reader: Reader) -> Q:
        return read_model_scope(reader, self.read_model_name).filter

    def _shown(self, request: HttpRequest) -> tuple[str, ...]:
        hidden = read_model_scope(admin_reader(request), self.read_model_name).redacted
        return tuple(name for name in self.field_names if name not in hidden)

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._shown(request)[:8]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The admin accepts a lookup on any local field from the query string
        # (?last_message__startswith=d): on a redacted field that is an oracle for its value.
        if request is None or lookup.split(LOOKUP_SEP)[0] not in self._shown(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._shown(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._shown(request)


def _read_model_admin(read_model: ReadModel) -> type[ReadModelAdmin]:
    return type(
        f"{read_model.model.__name__}Admin",
        (ReadModelAdmin,),
        {
            "read_model_name": read_model.name,
            "field_names": tuple(f.name for f in read_model.model._meta.concrete_fields),
        },
    )


# Every read model, read-only, straight from the projector registry.
for _read_model in get_read_models().values():
    tenant_admin_site.register(_read_model.model, _read_model_admin(_read_model))


@admin.register(SagaInstance, site=tenant_admin_site)
class SagaInstanceAdmin(TenantReadOnlyAdmin):
    """Saga state, read-only: it changes only when the saga reacts to the log."""

    list_display = ("saga", "key", "finished", "triggers", "last_position", "updated_at")
    list_filter = ("saga", "finished")
    search_fields = ("key",)
    fields = (
        "saga",
        "key",
        "finished",
        "state_pretty",
        "triggers",
        "last_position",
        "flow",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def visible_rows(self, reader: Reader) -> Q:
        return visible_sagas(reader)

    @admin.display(description="state")
    def state_pretty(self, obj: SagaInstance) -> Any:
        return pretty_json(obj.state)

    @admin.display(description="flow")
    def flow(self, obj: SagaInstance) -> Any:
        return tree_html(obj.correlation_id, object_reader(obj))


# The tenant admin's own pages (send a command, live events, dashboard) read both sides.
admin_pages.register(tenant_admin_site)
