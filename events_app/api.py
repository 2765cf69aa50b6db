"""Tenant API for the event log: GET /t/<tenant>/api/events/ (cursor by position) and detail."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from commands_app.read_policy import api_reader, visible_events
from commands_app.registry import get_registry
from events_app.models import Event
from events_app.traces import current_payload, trace
from intent_project.api.errors import ApiError
from intent_project.api.permissions import IsTenantMember

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class EventOut(serializers.ModelSerializer):
    aggregate_type = serializers.CharField(source="stream_type")
    aggregate_id = serializers.UUIDField(source="stream_id")
    payload = serializers.SerializerMethodField()
    schema_version = serializers.SerializerMethodField()
    stored_schema_version = serializers.IntegerField(source="schema_version")

    class Meta:
        model = Event
        fields = [
            "id",
            "position",
            "type",
            "aggregate_type",
            "aggregate_id",
            "version",
            "schema_version",
            "stored_schema_version",
            "payload",
            "metadata",
            "correlation_id",
            "causation_id",
            "command_id",
            "recorded_at",
        ]
        read_only_fields = fields

    def get_payload(self, row: Event) -> dict[str, Any]:
        # Old payload versions are upcast on read; the stored row is never rewritten.
        return current_payload(row.type, row.schema_version, row.payload)

    def get_schema_version(self, row: Event) -> int:
        event_cls = get_registry().events.get(row.type)
        return event_cls.SCHEMA_VERSION if event_cls else row.schema_version


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            "validation_error",
            f"{name} must be an integer from {low} to {high}.",
            {"fields": {name: ["Out of range or not an integer."]}},
        )
    return value


def _uuid_param(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(
            400,
            "validation_error",
            f"{name} must be a uuid.",
            {"fields": {name: ["Not a valid uuid."]}},
        ) from None


class EventListView(GenericAPIView):
    permission_classes = [IsTenantMember]
    serializer_class = EventOut

    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter(
                "after",
                OpenApiTypes.INT,
                description="Return events with a position greater than this.",
            ),
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                description=f"Page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
            ),
            OpenApiParameter("type", str),
            OpenApiParameter("aggregate_type", str),
            OpenApiParameter("aggregate_id", OpenApiTypes.UUID),
            OpenApiParameter("correlation_id", OpenApiTypes.UUID),
        ],
        responses=inline_serializer(
            "EventPage",
            {
                "results": EventOut(many=True),
                "next": serializers.URLField(allow_null=True),
                "last_position": serializers.IntegerField(allow_null=True),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        after = _int_param(request, "after", 0, 0, 2**63 - 1)
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        qs = Event.objects.filter(visible_events(api_reader(request)), position__gt=after)
        if request.query_params.get("type"):
            qs = qs.filter(type=request.query_params["type"])
        if request.query_params.get("aggregate_type"):
            qs = qs.filter(stream_type=request.query_params["aggregate_type"])
        aggregate_id = _uuid_param(request, "aggregate_id")
        if aggregate_id:
            qs = qs.filter(stream_id=aggregate_id)
        correlation_id = _uuid_param(request, "correlation_id")
        if correlation_id:
            qs = qs.filter(correlation_id=correlation_id)
        rows = list(qs.order_by("position")[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1].position if rows else None
        next_url = None
        if more and last is not None:
            params = request.query_params.copy()
            params["after"] = str(last)
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(params)
        return Response({"results": EventOut(rows, many=True).data, "next": next_url, "last_position": last})


class EventDetailView(GenericAPIView):
    permission_classes = [IsTenantMember]
    serializer_class = EventOut

    def get(self, request: Request, event_id: uuid.UUID) -> Response:
        # An event outside the caller's scope answers exactly as a missing one.
        row = Event.objects.filter(visible_events(api_reader(request)), id=event_id).first()
        if row is None:
            raise ApiError(404, "not_found", f"No event {event_id} in this tenant.")
        return Response(EventOut(row).data)


class TraceView(APIView):
    """Every command and event of one flow the caller may see, as a causation tree."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        description=(
            "The commands and events sharing `correlation_id`, nested by causation: a command's "
            "children are the events it recorded; an event's (or command's) children are the "
            "commands sagas issued in reaction. Cut at 2,000 of each (`truncated`)."
        ),
    )
    def get(self, request: Request, correlation_id: UUID) -> Response:
        flow = trace(correlation_id, api_reader(request))
        if flow is None:
            raise ApiError(404, "not_found", f"No command or event in flow {correlation_id}.")
        return Response(flow)
