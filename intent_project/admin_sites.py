"""The per-tenant admin site (/t/<tenant>/admin/) and what every tenant ModelAdmin shares.

The platform admin (/admin/) is Django's default site and lists tenants, users and
memberships. A second site serves tenant schemas; it is also named "admin" so
reverse("admin:...") works inside a tenant (ENVIRONMENT-NOTES.md).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from commands_app.domain.errors import IntentError
from commands_app.operations import Operator, OperatorRequired, may_operate
from commands_app.read_policy import EVERYTHING, Reader
from intent_project.tenants.services import role_in


@dataclass(frozen=True)
class Page:
    route: str
    name: str
    view: Callable[..., HttpResponse]
    title: str


class TenantAdminSite(admin.AdminSite):
    site_header = "Intent: tenant admin"
    site_url = "/api/docs/"
    index_title = "Commands, events and read models"
    # Lists of big tables need the width: the index and the header's links lead everywhere.
    enable_nav_sidebar = False

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self.pages: list[Page] = []

    def has_permission(self, request: HttpRequest) -> bool:
        """Active staff with a membership in this tenant; superusers are platform operators."""
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        return role_in(user, getattr(request, "tenant", None)) is not None

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"Intent: tenant {tenant.slug}"
            context["site_title"] = f"{tenant.slug} admin"
            if self.has_permission(request):
                context["tenant_pages"] = self._pages(request)
        return context

    def add_page(self, route: str, name: str, view: Callable[..., HttpResponse], title: str = "") -> None:
        """A page of this site's own (intent_project/admin_pages.py registers them); with a
        title, it is linked from every page's header."""
        self.pages.append(Page(route, name, view, title))

    def _pages(self, request: HttpRequest) -> list[dict[str, Any]]:
        here = request.path_info
        linked = []
        for page in self.pages:
            if page.title:
                url = reverse(f"{self.name}:{page.name}", current_app=self.name)
                linked.append({"url": url, "title": page.title, "current": here == url})
        return linked

    def get_urls(self) -> list[Any]:
        own = [path(page.route, self.admin_view(page.view), name=page.name) for page in self.pages]
        return [*own, *super().get_urls()]


tenant_admin_site = TenantAdminSite(name="admin")


class EstimatedCountPaginator(Paginator):
    """Unfiltered lists of big tables use PostgreSQL's row estimate instead of COUNT(*)."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                    [self.object_list.model._meta.db_table],  # type: ignore[attr-defined]
                )
                row = cursor.fetchone()
            if row and row[0] is not None and row[0] > 10_000:
                return int(row[0])
        return super().count


def pretty_json(value: Any) -> str:
    if value in (None, "", {}, []):
        return "—"
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str),
    )


def admin_reader(request: HttpRequest) -> Reader:
    """The reader behind an admin request: the membership's role here (superusers read all)."""
    return Reader.of(request.user, role_in(request.user, getattr(request, "tenant", None)))


class TenantReadOnlyAdmin(admin.ModelAdmin):
    """Members see what the read policy lets their role see; nobody adds, edits or deletes
    here. State changes go through the bus.

    Subclasses say which rows (`visible_rows`) and whether the model at all (`readable`),
    by asking commands_app.read_policy; lists, pages, searches and filters all come from
    `get_queryset`, so a row outside the scope is missing everywhere alike. Operator
    actions are offered only to the roles the operator policy lets operate (and the
    services the actions call ask it again).
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def visible_rows(self, reader: Reader) -> Q:
        return EVERYTHING

    def readable(self, reader: Reader) -> bool:
        return True

    def _member(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request) and self.readable(admin_reader(request))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(self.visible_rows(admin_reader(request)))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # A page asks for its object more than once (its buttons, its live status, Django's
        # own view): one query per request.
        fetched = request.__dict__.setdefault("_intent_objects", {})
        key = (self.model, str(object_id), from_field)
        if key not in fetched:
            obj = super().get_object(request, object_id, from_field)
            if obj is not None:
                # Display methods get only the object; the flow tree needs to know who looks.
                obj._reader = admin_reader(request)
            fetched[key] = obj
        return fetched[key]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        if not may_operate(operator_role(request)):
            return {}
        return super().get_actions(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._member(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._member(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def operator_role(request: HttpRequest) -> str | None:
    """The role an admin user acts with here: their membership's, or `admin` for superusers."""
    role = role_in(request.user, getattr(request, "tenant", None))
    if role is None and request.user.is_superuser:
        return "admin"
    return role


def object_reader(obj: Model) -> Reader:
    """Who opened this object's page (set by TenantReadOnlyAdmin.get_object); nobody if unknown."""
    return getattr(obj, "_reader", None) or Reader(role=None, user_id=None)


def admin_operator(request: HttpRequest) -> Operator:
    """The operator behind an admin request, for the operator services to judge."""
    return Operator.of(request.user, operator_role(request))


def operator_action(
    action: Callable[[Any, Operator], object], label: str
) -> Callable[[HttpRequest, Any], None]:
    """An ObjectAction's `run` from an operator service call, reported like the list actions."""

    def run(request: HttpRequest, obj: Any) -> None:
        modeladmin = tenant_admin_site.get_model_admin(type(obj))
        run_operator_action(modeladmin, request, [obj], action, label)

    return run


def run_operator_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    items: Iterable[Any],
    action: Callable[[Any, Operator], object],
    label: str,
) -> None:
    """Apply `action(item, operator)` to each selected item and report per item.

    Who may is the service's decision: its first refusal (OperatorRequired) ends the action.
    """
    operator = admin_operator(request)
    done = 0
    for item in items:
        try:
            action(item, operator)
            done += 1
        except OperatorRequired as exc:
            modeladmin.message_user(request, exc.message, level=messages.ERROR)
            return
        except IntentError as exc:
            modeladmin.message_user(request, f"{item}: {exc.message}", level=messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{label}: {done} done.", level=messages.SUCCESS)


@dataclass(frozen=True)
class ObjectAction:
    """A button on an object's page (beside History) that runs an operator action on it.

    `run(request, obj)` reports through messages. With `confirm`, a GET shows a page that says
    what will happen and asks again; the action itself only ever runs on POST.
    """

    name: str
    label: str
    run: Callable[[HttpRequest, Any], None]
    confirm: str = ""
    shown: Callable[[Any], bool] = lambda obj: True


class ObjectActionsAdmin(TenantReadOnlyAdmin):
    """Object-page buttons for the roles that may operate; everyone else gets none, and a
    request for one answers 403 with nothing done."""

    object_actions: tuple[ObjectAction, ...] = ()
    change_form_template = "admin/intent/change_form.html"

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.object_action_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_do"
        return [path("<path:object_id>/do/<slug:action>/", view, name=name), *super().get_urls()]

    def _offered(self, request: HttpRequest, obj: Any) -> list[ObjectAction]:
        if obj is None or not may_operate(operator_role(request)):
            return []
        return [action for action in self.object_actions if action.shown(obj)]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        obj = self.get_object(request, unquote(object_id))
        context = {"object_actions": self._offered(request, obj), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    def object_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        chosen = next((a for a in self.object_actions if a.name == action), None)
        if chosen is None:
            raise Http404(f"No action '{action}'.")
        if chosen not in self._offered(request, obj):
            raise PermissionDenied(f"Your role here may not {chosen.label.lower()}.")
        page = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[quote(obj.pk)])
        if request.method == "POST":
            chosen.run(request, obj)
            return HttpResponseRedirect(page)
        if request.method != "GET" or not chosen.confirm:
            return HttpResponseNotAllowed(["POST"])
        context = {
            **self.admin_site.each_context(request),
            "title": f"{chosen.label}: {obj}",
            "opts": self.opts,
            "object": obj,
            "action": chosen,
            "back": page,
        }
        return TemplateResponse(request, "admin/intent/confirm_action.html", context)


def confirm_first(question: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A list action that first shows a page saying what will happen and asking again (as
    Django's delete_selected does); it runs when that page posts back. Someone the operator
    policy refuses is refused by the action itself, without being asked first."""

    def wrap(action: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(action)
        def run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            if request.POST.get("post") == "yes" or not may_operate(operator_role(request)):
                return action(modeladmin, request, queryset)
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": getattr(run, "short_description", action.__name__),
                "opts": modeladmin.opts,
                "question": question,
                "queryset": queryset,
                "action_name": action.__name__,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/intent/confirm_bulk_action.html", context)

        return run

    return wrap
