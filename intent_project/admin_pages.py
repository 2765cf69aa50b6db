"""The tenant admin's own pages: send a command, the live log, and the tenant's dashboard.

Who may use them: members of the tenant with staff status (the site's has_permission, as for
every tenant admin page). Sending offers only the command types the member's role may send
(internal ones never) and is decided again by the bus exactly as for the API; the live page
and the dashboard show only what the member's read scope lets it see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max
from django.db.models.functions import TruncMinute
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from commands_app.bus import submit
from commands_app.domain.errors import IntentError
from commands_app.models import Command, CommandStatus
from commands_app.read_policy import visible_commands, visible_events
from commands_app.registry import get_registry
from events_app.models import Event
from intent_project.admin_sites import TenantAdminSite, admin_reader, operator_role, tenant_admin_site
from intent_project.schema_forms import payload_form, payload_of, put_errors
from intent_project.tenancy import current_schema, refuse_commands_if_suspended
from projections_app.models import DeadLetter, ProjectionState

CHART_MINUTES = 60
LIVE_ROWS = 50


@dataclass(frozen=True)
class Lag:
    state: ProjectionState
    lag: int


@dataclass(frozen=True)
class Page:
    name: str
    title: str


PAGES = (
    Page("send_command", "Send a command"),
    Page("live_events", "Live events"),
    Page("dashboard", "Dashboard"),
)


def sendable(request: HttpRequest) -> list[dict[str, Any]]:
    """The registry's descriptions of the command types this member's role may send."""
    role = operator_role(request)
    allowed = get_registry().roles.get(role or "", set())
    return [c for c in get_registry().describe()["commands"] if c["type"] in allowed and not c["internal"]]


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**tenant_admin_site.each_context(request), "title": title, **extra}


# -- send a command --------------------------------------------------------------------------
def send_command_list(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(
        request,
        "admin/intent/send_list.html",
        _context(request, "Send a command", commands=sendable(request)),
    )


def send_command(request: HttpRequest, type_name: str) -> HttpResponse:
    described = next((c for c in sendable(request) if c["type"] == type_name), None)
    if described is None:
        # An internal type, another role's, or none at all: the same refusal, nothing stored.
        raise PermissionDenied(f"Your role here may not send '{type_name}'.")
    form_class = payload_form(described["schema"])
    form = form_class(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            refuse_commands_if_suspended(request.tenant)  # type: ignore[attr-defined]
            submission = submit(
                schema_name=current_schema(),
                tenant=request.tenant.slug,  # type: ignore[attr-defined]
                type_name=type_name,
                payload=payload_of(form),
                role=operator_role(request),
                user_id=str(request.user.pk),
                username=request.user.get_username(),
                source="admin",
                request_id=getattr(request, "request_id", None),
            )
        except IntentError as exc:
            fields = (exc.details or {}).get("fields") if isinstance(exc.details, dict) else None
            if fields:
                put_errors(form, fields)
            else:
                form.add_error(None, f"{exc.code}: {exc.message}")
        else:
            command = submission.command
            messages.success(request, f"Stored {type_name} {command.pk}; its status follows below.")
            return HttpResponseRedirect(reverse("admin:commands_app_command_change", args=[command.pk]))
    context = _context(
        request,
        f"Send {type_name}",
        command=described,
        form=form,
    )
    return TemplateResponse(
        request, "admin/intent/send_form.html", context, status=400 if form.errors else 200
    )


# -- the live log ----------------------------------------------------------------------------
def live_events(request: HttpRequest) -> HttpResponse:
    reader = admin_reader(request)
    latest = list(Event.objects.filter(visible_events(reader)).order_by("-position")[:LIVE_ROWS])
    head = Event.objects.aggregate(head=Max("position"))["head"] or 0
    context = _context(
        request,
        "Live events",
        events=latest,
        stream_url=reverse("events-stream") + f"?after={head}",
        event_url=reverse("admin:events_app_event_change", args=[0]),
        keep=200,
    )
    return TemplateResponse(request, "admin/intent/live_events.html", context)


# -- the dashboard ---------------------------------------------------------------------------
STATUS_ORDER = (CommandStatus.PROCESSED, CommandStatus.FAILED, CommandStatus.CONSUMED, CommandStatus.PENDING)


def dashboard(request: HttpRequest) -> HttpResponse:
    reader = admin_reader(request)
    now = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = now - timedelta(minutes=CHART_MINUTES)
    recent = Command.objects.filter(visible_commands(reader), created_at__gte=since)
    per_minute: dict[Any, dict[str, int]] = {}
    for row in (
        recent.annotate(minute=TruncMinute("created_at"))
        .values("minute", "status")
        .annotate(n=Count("*"))
        .order_by()
    ):
        per_minute.setdefault(row["minute"], {})[row["status"]] = row["n"]
    totals = {status: sum(m.get(status, 0) for m in per_minute.values()) for status in STATUS_ORDER}
    failures = list(recent.filter(status=CommandStatus.FAILED).order_by("-created_at")[:10])
    head = Event.objects.aggregate(head=Max("position"))["head"] or 0
    projections = [
        Lag(state, max(head - state.position, 0)) for state in ProjectionState.objects.order_by("name")
    ]
    context = _context(
        request,
        "Dashboard",
        chart=_chart(per_minute, since),
        totals=totals,
        failures=failures,
        projections=projections,
        stalled=sum(1 for p in projections if p.state.status == "stalled"),
        dead_letters=DeadLetter.objects.filter(replayed_at__isnull=True).count(),
        minutes=CHART_MINUTES,
        head=head,
    )
    return TemplateResponse(request, "admin/intent/dashboard.html", context)


def _chart(per_minute: dict[Any, dict[str, int]], since: Any) -> SafeString:
    """Commands per minute as stacked SVG bars (server-rendered: no script, no CDN)."""
    width, height, left, bottom = 720, 150, 34, 18
    step = (width - left) / CHART_MINUTES
    peak = max((sum(m.values()) for m in per_minute.values()), default=0) or 1
    scale = (height - bottom - 6) / peak
    bars = []
    for index in range(CHART_MINUTES):
        minute = since + timedelta(minutes=index)
        counts = per_minute.get(minute, {})
        y = float(height - bottom)
        for status in STATUS_ORDER:
            n = counts.get(status, 0)
            if not n:
                continue
            h = n * scale
            y -= h
            bars.append(
                (
                    f"{left + index * step + 1:.1f}",
                    f"{y:.1f}",
                    f"{max(step - 2, 1):.1f}",
                    f"{h:.1f}",
                    status,
                    f"{minute:%H:%M} {status}: {n}",
                )
            )
    rects = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" class="bar-{}"><title>{}</title></rect>', bars
    )
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (
                f"{left + i * step:.1f}",
                height - 4,
                "end" if i == CHART_MINUTES else "middle",
                f"{since + timedelta(minutes=i):%H:%M}",
            )
            for i in range(0, CHART_MINUTES + 1, 10)
        ),
    )
    return format_html(
        '<svg class="intent-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="Commands per minute, last {m} minutes">'
        '<line class="axis" x1="{l}" y1="{b}" x2="{w}" y2="{b}"/>'
        '<text x="{tx}" y="12" text-anchor="end">{peak}</text><text x="{tx}" y="{b}" text-anchor="end">0</text>'
        "{rects}{labels}</svg>",
        w=width,
        h=height,
        m=CHART_MINUTES,
        l=left,
        b=height - bottom,
        tx=left - 4,
        peak=peak,
        rects=rects,
        labels=labels,
    )


def register(site: TenantAdminSite) -> None:
    site.add_page("send/", "send_command", send_command_list, "Send a command")
    site.add_page("send/<str:type_name>/", "send_command_type", send_command)
    site.add_page("live/", "live_events", live_events, "Live events")
    site.add_page("dashboard/", "dashboard", dashboard, "Dashboard")
