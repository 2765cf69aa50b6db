"""Tenant API for the event log: GET /t/<tenant>/api/events/ (cursor by position) and detail."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from commands_app.models import CommandStatus
from commands_app.read_policy import api_reader, sees_event, visible_events
from commands_app.registry import get_registry
from events_app.models import Event
from events_app.stream import Selection, TenantLog
from events_app.traces import current_payload, trace
from intent_project import streams
from intent_project.api.errors import ApiError
from intent_project.api.fields import PersonalDataPage
from intent_project.api.params import POSITION_MAX, QueryParams, parse
from intent_project.api.permissions import IsTenantMember
from intent_project.api.schema import FailureSerializer, errors
from intent_project.db import replicas
from intent_project.tenancy import current_schema

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# query parameter -> the Event column it filters on
FILTERS = {
    "type": "type",
    "aggregate_type": "stream_type",
    "aggregate_id": "stream_id",
    "correlation_id": "correlation_id",
}


class _EventPage(PersonalDataPage):
    kind = "event"


class EventOut(serializers.ModelSerializer):
    aggregate_type = serializers.CharField(source="stream_type")
    aggregate_id = serializers.UUIDField(source="stream_id")
    payload = serializers.SerializerMethodField()
    schema_version = serializers.SerializerMethodField()
    stored_schema_version = serializers.IntegerField(source="schema_version")

    class Meta:
        model = Event
        list_serializer_class = _EventPage
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
        return current_payload(row.type, row.schema_version, row.payload, self.context.get("keys"))

    def get_schema_version(self, row: Event) -> int:
        event_cls = get_registry().events.get(row.type)
        return event_cls.SCHEMA_VERSION if event_cls else row.schema_version


class EventListParams(QueryParams):
    after = serializers.IntegerField(
        default=0,
        min_value=0,
        max_value=POSITION_MAX,
        help_text="Return events with a position greater than this.",
    )
    limit = serializers.IntegerField(
        default=DEFAULT_LIMIT,
        min_value=1,
        max_value=MAX_LIMIT,
        help_text=f"Page size (default {DEFAULT_LIMIT}).",
    )
    type = serializers.CharField(required=False, help_text="Only events of this type.")
    aggregate_type = serializers.CharField(required=False, help_text="Only events of this aggregate type.")
    aggregate_id = serializers.UUIDField(required=False, help_text="Only events of this aggregate.")
    correlation_id = serializers.UUIDField(required=False, help_text="Only events of this flow.")


class EventListView(GenericAPIView):
    permission_classes = [IsTenantMember]
    serializer_class = EventOut

    @extend_schema(
        operation_id="listEvents",
        description="The log as the caller may see it, in position order; page on with `after`.",
        parameters=[EventListParams],
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
        params = parse(request, EventListParams)
        limit = params["limit"]
        qs = Event.objects.filter(visible_events(api_reader(request)), position__gt=params["after"])
        for name, column in FILTERS.items():
            if name in params:
                qs = qs.filter(**{column: params[name]})
        with replicas.reading(request):
            rows = list(qs.order_by("position")[: limit + 1])
            more = len(rows) > limit
            rows = rows[:limit]
            results = EventOut(rows, many=True).data
        last = rows[-1].position if rows else None
        next_url = None
        if more and last is not None:
            query = request.query_params.copy()
            query["after"] = str(last)
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(query)
        return Response({"results": results, "next": next_url, "last_position": last})


class EventDetailView(GenericAPIView):
    permission_classes = [IsTenantMember]
    serializer_class = EventOut

    @extend_schema(operation_id="getEvent", description="One event.", responses=EventOut)
    def get(self, request: Request, event_id: uuid.UUID) -> Response:
        # An event outside the caller's scope answers exactly as a missing one.
        visible = visible_events(api_reader(request))
        with replicas.reading(request):
            row = Event.objects.filter(visible, id=event_id).first()
            if row is None:
                raise ApiError(404, "not_found", f"No event {event_id} in this tenant.")
            return Response(EventOut(row).data)


@extend_schema_field({"type": "array", "items": {"$ref": "#/components/schemas/TraceNode"}})
class TraceChildren(serializers.ListField):
    """A node's children: the same kind of node, nested."""


class TraceNodeOut(serializers.Serializer):
    """A command or an event of the flow; `kind` says which, and which fields it has."""

    kind = serializers.ChoiceField(choices=["command", "event"])
    id = serializers.UUIDField()
    type = serializers.CharField()
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.UUIDField(allow_null=True)
    causation_id = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=CommandStatus.choices, required=False, help_text="Commands.")
    source = serializers.CharField(allow_null=True, required=False, help_text="Commands.")  # type: ignore[assignment]
    saga = serializers.CharField(allow_null=True, required=False, help_text="Commands a saga issued.")
    error = FailureSerializer(allow_null=True, required=False, help_text="Commands.")
    not_before = serializers.DateTimeField(allow_null=True, required=False, help_text="Commands.")
    created_at = serializers.DateTimeField(required=False, help_text="Commands.")
    processed_at = serializers.DateTimeField(allow_null=True, required=False, help_text="Commands.")
    position = serializers.IntegerField(required=False, help_text="Events.")
    version = serializers.IntegerField(required=False, help_text="Events.")
    command_id = serializers.UUIDField(allow_null=True, required=False, help_text="Events.")
    recorded_at = serializers.DateTimeField(required=False, help_text="Events.")
    children = TraceChildren()

    class Meta:
        ref_name = "TraceNode"


class TraceOut(serializers.Serializer):
    correlation_id = serializers.UUIDField()
    commands = serializers.IntegerField(help_text="How many commands the tree holds.")
    events = serializers.IntegerField(help_text="How many events the tree holds.")
    truncated = serializers.BooleanField(help_text="Cut at 2,000 commands or events.")
    roots = TraceNodeOut(many=True)

    class Meta:
        ref_name = "Trace"


class TraceView(APIView):
    """Every command and event of one flow the caller may see, as a causation tree."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="getTrace",
        responses=TraceOut,
        description=(
            "The commands and events sharing `correlation_id`, nested by causation: a command's "
            "children are the events it recorded; an event's (or command's) children are the "
            "commands sagas issued in reaction. Cut at 2,000 of each (`truncated`)."
        ),
    )
    def get(self, request: Request, correlation_id: UUID) -> Response:
        reader = api_reader(request)
        with replicas.reading(request):
            flow = trace(correlation_id, reader)
        if flow is None:
            raise ApiError(404, "not_found", f"No command or event in flow {correlation_id}.")
        return Response(flow)


class EventStreamParams(QueryParams):
    after = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=POSITION_MAX,
        help_text="Start after this position (a `Last-Event-ID` header wins over it).",
    )
    type = serializers.CharField(required=False, help_text="Only events of this type.")
    aggregate_type = serializers.CharField(required=False, help_text="Only events of this aggregate type.")
    aggregate_id = serializers.UUIDField(required=False, help_text="Only events of this aggregate.")
    correlation_id = serializers.UUIDField(required=False, help_text="Only events of this flow.")


# query parameter -> the StreamedEvent attribute it filters on
STREAM_FILTERS = {
    "type": "type",
    "aggregate_type": "aggregate_type",
    "aggregate_id": "aggregate_id",
    "correlation_id": "correlation_id",
}

STREAM_DESCRIPTION = (
    "Server-Sent Events (`text/event-stream`). Each `event` message has `id: <position>` and "
    "the event as the events list returns it as `data`, in position order, without gaps among "
    "what the caller may see. Resume with the `Last-Event-ID` header (an EventSource sends it "
    "when it reconnects) or `?after=`: nothing is missed or sent twice. `: keep-alive` comments "
    "arrive when the log is quiet; access is checked again while the stream lasts, and an "
    "`error` message (the API's error body) ends it. At most STREAMS_PER_USER streams per "
    "user (429 `too_many_streams`)."
)
LAST_EVENT_ID = OpenApiParameter(
    "Last-Event-ID",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    required=False,
    description="Resume after this position (the last `id` received).",
)


class EventStreamView(streams.StreamView):
    """The tenant's log, live."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="streamEvents",
        parameters=[EventStreamParams, LAST_EVENT_ID],
        responses={
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="The stream."),
            **errors(429),
        },
        description=STREAM_DESCRIPTION,
    )
    def get(self, request: Request) -> Any:
        params = parse(request, EventStreamParams)
        after = streams.resume_from(request, params.get("after"))
        reader = api_reader(request)
        filters = {STREAM_FILTERS[name]: str(params[name]) for name in STREAM_FILTERS if name in params}
        columns = {FILTERS[name]: params[name] for name in FILTERS if name in params}
        schema = current_schema()
        selection = Selection(schema, visible_events(reader), sees_event(reader), filters, columns)
        order = streams.EventStreamOrder(after, TenantLog(schema), selection, streams.take_place(request))
        return streams.respond(request, order, streams.blocking_events(order))
