from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from commands_app.domain.personal import PLACEHOLDER
from commands_app.operations import OperatorRequired, may_erase
from commands_app.read_policy import Reader, read_model_scope, visible_sagas
from events_app.models import SubjectKey
from events_app.traces import tree_html
from intent_project import admin_pages
from intent_project.admin_filters import ExactValueFilter
from intent_project.admin_sites import (
    ObjectAction,
    ObjectActionsAdmin,
    TenantReadOnlyAdmin,
    admin_operator,
    admin_reader,
    confirm_first,
    object_reader,
    operator_action,
    operator_role,
    pretty_json,
    run_operator_action,
    tenant_admin_site,
)
from intent_project.tenancy import current_schema
from projections_app import operations
from projections_app.models import DeadLetter, ProjectionState, RebuildJob, SagaInstance
from projections_app.money import format_money
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
FORGET_QUESTION = (
    "This cannot be undone. The subject's key is deleted: their personal data, in every command, event "
    f"and snapshot (and every backup of them), reads as {PLACEHOLDER!r} from now on, and no new personal "
    "data is taken for them. A worker rebuilds the read models that hold personal data; until it swaps "
    "them in they still show the old values."
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
        "rate",
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
        "rate",
        "position",
        "error",
        "started_at",
        "updated_at",
        "finished_at",
    )
    readonly_fields = fields
    actions = ["cancel"]

    @admin.display(description="rate", ordering="events_per_second")
    def rate(self, obj: RebuildJob) -> str:
        return f"{obj.events_per_second:,.1f} events/s" if obj.events_per_second else "—"

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


# What a projector keeps to apply each event once, where in the log a row came from, and
# when it last wrote the row: shown on a row's page, left out of lists.
_BOOKKEEPING = frozenset({"last_event_version", "last_position", "last_event_id", "position", "updated_at"})
_SEARCHABLE = (models.UUIDField, models.CharField)  # ids and names; choices are filters


class ReadModelAdmin(TenantReadOnlyAdmin):
    """One read model, read-only, as the read policy lets the caller's role see it.

    Who may use it: staff members of the tenant whose role reads this read model
    (commands_app.read_policy), and superusers; they see only the rows their role reads,
    and nothing of its redacted fields: not as columns, on pages, as filters or in search
    (a filter or a search on a field answers questions about its value).

    Lists show the row's key and what tells rows apart, not bookkeeping or long text; a
    row's page shows every field. The API's filter fields are the list filters (choices as
    links, other fields as an exact-value box: no SELECT DISTINCT over a big table), and
    search matches the key and the filter fields holding ids or names, exactly. Money is
    shown in its currency (`12.34 EUR`) and sorts by its minor units.
    """

    read_model: ReadModel
    list_columns: tuple[str, ...] = ()
    search_columns: tuple[str, ...] = ()
    show_facets = admin.ShowFacets.NEVER  # each facet is a COUNT over the table

    @property
    def read_model_name(self) -> str:
        return self.read_model.name

    def readable(self, reader: Reader) -> bool:
        return read_model_scope(reader, self.read_model_name).allowed

    def visible_rows(self, reader: Reader) -> Q:
        return read_model_scope(reader, self.read_model_name).filter

    def _hidden(self, request: HttpRequest) -> frozenset[str]:
        return read_model_scope(admin_reader(request), self.read_model_name).redacted

    def _shown(self, request: HttpRequest) -> tuple[str, ...]:
        hidden = self._hidden(request)
        return tuple(f.name for f in self.model._meta.concrete_fields if f.name not in hidden)

    def get_list_display(self, request: HttpRequest) -> Any:
        hidden = self._hidden(request)
        return tuple(_column(self.read_model, name) for name in self.list_columns if name not in hidden)

    def get_list_display_links(self, request: HttpRequest, list_display: Any) -> Any:
        return tuple(list_display)[:1]

    def get_list_filter(self, request: HttpRequest) -> Any:
        hidden = self._hidden(request)
        return tuple(
            _list_filter(self.model._meta.get_field(name))
            for name in self.read_model.filter_fields
            if name not in hidden
        )

    def get_search_fields(self, request: HttpRequest) -> Any:
        hidden = self._hidden(request)
        return tuple(name for name in self.search_columns if name not in hidden)

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """Exact matches, so the primary key and indexes serve them: each word against the
        id fields (several ids, separated by spaces), the whole term against the names
        (ignoring case). A term that is no valid value of any field matches nothing."""
        fields = [self.model._meta.get_field(name) for name in self.get_search_fields(request)]
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q(pk__in=[])
        for model_field in fields:
            if isinstance(model_field, models.CharField):
                matches |= Q(**{f"{model_field.name}__iexact": term})
                continue
            for word in term.split():
                with contextlib.suppress(ValidationError):  # not an id: no match on this field
                    matches |= Q(**{model_field.name: model_field.to_python(word)})
        return queryset.filter(matches), False

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        fields = [self.model._meta.get_field(name) for name in self.get_search_fields(request)]
        ids = [str(f.verbose_name) for f in fields if not isinstance(f, models.CharField)]
        names = [str(f.verbose_name) for f in fields if isinstance(f, models.CharField)]
        said = [f"{_or(ids)} (several, separated by spaces)"] if ids else []
        said += [f"{_or(names)} (ignoring case)"] if names else []
        changelist.search_help_text = f"Exact {', or exact '.join(said)}."
        return changelist

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The admin accepts a lookup on any local field from the query string
        # (?last_message__startswith=d): on a redacted field that is an oracle for its value.
        if request is None or lookup.split(LOOKUP_SEP)[0] not in self._shown(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return tuple(_detail(self.read_model, name) for name in self._shown(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _list_filter(model_field: models.Field[Any, Any]) -> Any:
    """Choices as links; anything else (ids, names, codes) as a box for an exact value."""
    return model_field.name if model_field.choices else (model_field.name, ExactValueFilter)


def _column(read_model: ReadModel, name: str) -> str:
    if name in read_model.money_fields:
        return f"{name}_money"
    model_field = read_model.model._meta.get_field(name)
    if isinstance(model_field, models.UUIDField):
        return f"{name}_short"
    if isinstance(model_field, models.DateTimeField):
        return f"{name}_time"
    return name


def _detail(read_model: ReadModel, name: str) -> str:
    if name in read_model.money_fields:
        return f"{name}_money_detail"
    if isinstance(read_model.model._meta.get_field(name), models.JSONField):
        return f"{name}_pretty"
    return name


def _list_columns(read_model: ReadModel) -> tuple[str, ...]:
    """The read model's `list_fields`, else the key, then every field but bookkeeping, long
    text and JSON, and the currency where it is shown with the amounts."""
    if read_model.list_fields:
        return read_model.list_fields
    meta = read_model.model._meta
    folded = {read_model.currency_field} if read_model.money_fields else set()
    return tuple(
        f.name
        for f in meta.concrete_fields
        if f.primary_key
        or not (
            f.name in _BOOKKEEPING or f.name in folded or isinstance(f, models.TextField | models.JSONField)
        )
    )


def _displays(read_model: ReadModel) -> dict[str, Any]:
    """The display methods the columns and pages name (money, short ids, JSON)."""
    methods: dict[str, Any] = {}
    currency = read_model.currency_field
    for model_field in read_model.model._meta.concrete_fields:
        name, label = model_field.name, model_field.verbose_name

        if name in read_model.money_fields:

            def money(self: ReadModelAdmin, obj: Any, name: str = name) -> Any:
                shown = format_money(getattr(obj, name), getattr(obj, currency))
                return format_html('<span style="white-space: nowrap">{}</span>', shown)

            def money_detail(self: ReadModelAdmin, obj: Any, name: str = name) -> str:
                minor = getattr(obj, name)
                return f"{format_money(minor, getattr(obj, currency))} ({minor:,} minor units)"

            methods[f"{name}_money"] = admin.display(description=label, ordering=name)(money)
            methods[f"{name}_money_detail"] = admin.display(description=label)(money_detail)
        elif isinstance(model_field, models.UUIDField):
            filters = name in read_model.filter_fields and not model_field.primary_key

            def short(self: ReadModelAdmin, obj: Any, name: str = name, filters: bool = filters) -> Any:
                return short_id(getattr(obj, name), f"?{name}={getattr(obj, name)}" if filters else None)

            # "from account", not "from account id": the header, not the short id, sets the
            # column's width.
            header = str(label).removesuffix(" id")
            methods[f"{name}_short"] = admin.display(description=header, ordering=name)(short)
        elif isinstance(model_field, models.DateTimeField):

            def time(self: ReadModelAdmin, obj: Any, name: str = name) -> Any:
                return compact_time(getattr(obj, name))

            header = str(label).removesuffix(" at")  # "settled", not "settled at": as for ids
            methods[f"{name}_time"] = admin.display(description=header, ordering=name)(time)
        elif isinstance(model_field, models.JSONField):

            def pretty(self: ReadModelAdmin, obj: Any, name: str = name) -> Any:
                return pretty_json(getattr(obj, name))

            methods[f"{name}_pretty"] = admin.display(description=label)(pretty)
    return methods


def compact_time(value: datetime | None) -> Any:
    """`2026-12-07 06:13:05` in the admin's time zone (the full time on hover)."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    # Date and time each on one line: a narrow column breaks between them, never inside.
    return format_html(
        '<span title="{}"><span style="white-space: nowrap">{}</span> '
        '<span style="white-space: nowrap">{}</span></span>',
        local.isoformat(),
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M:%S"),
    )


def short_id(value: Any, href: str | None = None) -> Any:
    """The first 8 characters of an id, the whole id on hover; a link when `href` is given
    (in a list: the rows with this id)."""
    if value is None:
        return "—"
    full = str(value)
    if href is None:
        return format_html('<span title="{}">{}…</span>', full, full[:8])
    return format_html('<a href="{}" title="{} (rows with this id)">{}…</a>', href, full, full[:8])


def _read_model_admin(read_model: ReadModel) -> type[ReadModelAdmin]:
    meta = read_model.model._meta
    searchable = [
        name
        for name in (meta.pk.name, *read_model.filter_fields)
        if isinstance(field := meta.get_field(name), _SEARCHABLE) and not field.choices
    ]
    return type(
        f"{read_model.model.__name__}Admin",
        (ReadModelAdmin,),
        {
            "read_model": read_model,
            "list_columns": _list_columns(read_model),
            "search_columns": tuple(dict.fromkeys(searchable)),
            "ordering": read_model.ordering or (meta.pk.name,),
            **_displays(read_model),
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


class ErasedFilter(admin.SimpleListFilter):
    title = "erased"
    parameter_name = "erased"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Erased")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() in ("yes", "no"):
            return queryset.filter(erased_at__isnull=self.value() == "no")
        return queryset


# Here rather than in events_app (which keeps the keys): forgetting rebuilds projections.
@admin.register(SubjectKey, site=tenant_admin_site)
class DataSubjectAdmin(ObjectActionsAdmin):
    """The data subjects this tenant keeps personal data of, and those erased. Tenant admins
    only (other roles see no such page); the keys themselves are never shown."""

    list_display = ("subject", "state", "created_at", "erased_at", "erased_by")
    list_filter = (ErasedFilter,)
    search_fields = ("=subject",)
    search_help_text = "A whole subject id (for banking: an account id)."
    fields = ("subject", "state", "created_at", "erased_at", "erased_by")
    readonly_fields = fields
    actions = ["forget"]
    object_actions = (
        ObjectAction(
            "forget",
            "Forget this subject",
            operator_action(
                lambda subject, by: operations.forget_subjects([subject.subject], by=by),
                "Erased (the read models are rebuilt on a worker)",
            ),
            confirm=FORGET_QUESTION,
            shown=lambda subject: subject.erased_at is None,
        ),
    )

    def readable(self, reader: Reader) -> bool:
        return may_erase(reader.role)

    def _offered(self, request: HttpRequest, obj: Any) -> list[ObjectAction]:
        return super()._offered(request, obj) if may_erase(operator_role(request)) else []

    @admin.display(description="personal data")
    def state(self, obj: SubjectKey) -> str:
        return f"erased: reads as {PLACEHOLDER}" if obj.erased_at else "kept, sealed"

    @admin.action(description="Forget the selected subjects (erase their personal data)")
    @confirm_first(FORGET_QUESTION)
    def forget(self, request: HttpRequest, queryset: Any) -> None:
        subjects = [row.subject for row in queryset if row.erased_at is None]
        run_operator_action(
            self,
            request,
            [subjects] if subjects else [],
            lambda chosen, by: operations.forget_subjects(chosen, by=by),
            f"Erased {len(subjects)} subject(s); the read models are rebuilt on a worker",
        )


# The tenant admin's own pages (send a command, live events, dashboard) read both sides.
admin_pages.register(tenant_admin_site)
