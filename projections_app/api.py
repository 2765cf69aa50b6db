"""Tenant API for the read side: projection health and read-only read models."""

from __future__ import annotations

import functools
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from commands_app.operations import api_operator
from commands_app.read_policy import ReadModelScope, api_reader, redact, require_read_model
from intent_project import notifications
from intent_project.api.errors import ApiError
from intent_project.api.pagination import StrictCursorPagination
from intent_project.api.params import (
    POSITION_MAX,
    CursorPageParams,
    QueryParams,
    WaitSeconds,
    describe_param,
    model_field_params,
    parse,
)
from intent_project.api.permissions import IsTenantMember
from intent_project.tenancy import current_schema
from intent_project.waits import Wait
from projections_app import operations
from projections_app.lookup import checkpoint, checkpoints, projection_named
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.projectors.base import Projection
from projections_app.registry import get_consumers, get_read_models
from projections_app.runner import head_position

ProjectionOut = inline_serializer(
    "Projection",
    many=True,
    fields={
        "name": serializers.CharField(),
        "kind": serializers.ChoiceField(choices=["projection", "saga"]),
        "version": serializers.IntegerField(),
        "status": serializers.CharField(),
        "checkpoint": serializers.IntegerField(),
        "head": serializers.IntegerField(),
        "lag": serializers.IntegerField(help_text="Positions between the checkpoint and the log's head."),
        "failures": serializers.IntegerField(),
        "last_error": serializers.JSONField(allow_null=True),
        "event_types": serializers.ListField(child=serializers.CharField()),
        "read_models": serializers.ListField(child=serializers.CharField()),
        "retry_at": serializers.DateTimeField(allow_null=True),
        "dead_letters": serializers.IntegerField(help_text="Skipped events not replayed yet."),
        "updated_at": serializers.DateTimeField(allow_null=True),
    },
)


def describe(projection: Projection, state: ProjectionState, head: int) -> dict[str, Any]:
    return {
        "name": projection.name,
        "kind": projection.KIND,
        "version": projection.version,
        "status": state.status,
        "checkpoint": state.position,
        "head": head,
        "lag": max(head - state.position, 0),
        "failures": state.failures,
        "last_error": state.last_error,
        "retry_at": state.retry_at,
        "event_types": sorted(projection.event_types),
        "read_models": sorted(n for n, rm in get_read_models().items() if rm.projection == projection.name),
        "dead_letters": DeadLetter.objects.filter(
            projection=projection.name, replayed_at__isnull=True
        ).count(),
        "updated_at": state.updated_at,
    }


class ProjectionListView(APIView):
    permission_classes = [IsTenantMember]

    @extend_schema(responses=ProjectionOut)
    def get(self, request: Request) -> Response:
        states = checkpoints()
        head = head_position()
        return Response([describe(p, states[p.name], head) for p in get_consumers()])


def _state_of(name: str) -> tuple[Projection, ProjectionState]:
    projection = projection_named(name)
    return projection, checkpoint(projection)


class DeadLetterOut(serializers.ModelSerializer):
    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "projection",
            "event_id",
            "position",
            "event_type",
            "error",
            "skipped_by",
            "created_at",
            "replayed_at",
        ]
        read_only_fields = fields


class ProjectionDetailView(APIView):
    permission_classes = [IsTenantMember]

    @extend_schema(operation_id="projections_retrieve", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str) -> Response:
        projection, state = _state_of(name)
        body = describe(projection, state, head_position())
        body["dead_letter_records"] = DeadLetterOut(
            DeadLetter.objects.filter(projection=name).order_by("-created_at")[:100], many=True
        ).data
        return Response(body)


class ProjectionResumeView(APIView):
    """Retry the event a stalled projection stopped at."""

    permission_classes = [IsTenantMember]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, name: str) -> Response:
        operations.resume(name, by=api_operator(request))
        projection, state = _state_of(name)
        return Response(describe(projection, state, head_position()))


class ProjectionSkipView(APIView):
    """Move the event a stalled projection stopped at into a dead letter and go on."""

    permission_classes = [IsTenantMember]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, name: str) -> Response:
        letter = operations.skip(name, by=api_operator(request))
        projection, state = _state_of(name)
        body = describe(projection, state, head_position())
        body["dead_letter"] = DeadLetterOut(letter).data
        return Response(body)


class DeadLetterReplayView(GenericAPIView):
    """Apply a skipped event now and clear its dead letter."""

    permission_classes = [IsTenantMember]
    serializer_class = DeadLetterOut

    @extend_schema(request=None, responses=DeadLetterOut)
    def post(self, request: Request, name: str, letter_id: int) -> Response:
        letter = operations.replay_dead_letter(letter_id, by=api_operator(request), projection=name)
        return Response(DeadLetterOut(letter).data)


@functools.cache
def _serializer_for(model: type[models.Model]) -> type[serializers.ModelSerializer]:
    meta = type("Meta", (), {"model": model, "fields": "__all__"})
    return type(f"{model.__name__}Out", (serializers.ModelSerializer,), {"Meta": meta})


class ReadModelCursor(StrictCursorPagination):
    """Ordered by the read model's declared ordering (set per request)."""


READ_YOUR_WRITES_DEFAULT_WAIT = 5.0


class ReadYourWritesParams(QueryParams):
    min_position = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=POSITION_MAX,
        help_text="Read-your-writes: wait until the projection has applied the log up to this "
        "position (503 projection_behind if it does not within `wait`).",
    )
    wait = WaitSeconds(
        default=READ_YOUR_WRITES_DEFAULT_WAIT,
        help_text="Seconds to wait for min_position (default 5, max 30).",
    )


class ReadModelListParams(CursorPageParams, ReadYourWritesParams):
    """What every read-model list takes; `list_params` adds one read model's filters."""


@functools.cache
def list_params(name: str, redacted: frozenset[str] = frozenset()) -> type[ReadModelListParams]:
    """The list parameters of read model `name` for a reader to whom `redacted` is hidden: its
    filter fields but the redacted ones (a filter would reveal the value), and nothing else."""
    read_model = get_read_models()[name]
    filterable = [f for f in read_model.filter_fields if f not in redacted]
    declared = {
        **model_field_params(read_model.model, filterable),
        "unknown": f"Filterable: {', '.join(filterable) or 'nothing'}.",
    }
    return type(f"{read_model.model.__name__}ListParams", (ReadModelListParams,), declared)


def _filters_doc() -> str:
    base = set(ReadModelListParams().fields)
    lines = []
    for name in sorted(get_read_models()):
        declared = list_params(name)().fields
        filters = [f"`{key}` ({describe_param(field)})" for key, field in declared.items() if key not in base]
        lines.append(f"- `{name}`: {', '.join(filters) or 'no filters'}")
    return "\n".join(lines)


def _await_position(request: Request, projection_name: str, params: dict[str, Any]) -> int:
    """Read-your-writes: hold until the projection has passed ?min_position=N (bounded).

    A client that got positions back from its command passes the highest one here and is
    guaranteed to read a model that includes its own write, or a clear 503 saying why not.
    Returns the checkpoint the response reflects.
    """
    projection = projection_named(projection_name)
    wanted = params.get("min_position")
    if wanted is None:
        return checkpoint(projection).position
    # Woken when the checkpoint moves (intent_project/waits.py); a stalled projection
    # will not move, so it is answered at once.
    key = notifications.projection_key(projection_name)
    with Wait(request, current_schema(), key, params["wait"]) as waiting:
        state = waiting.until(
            checkpoint(projection),
            lambda: checkpoint(projection),
            lambda s: s.position >= wanted or s.status == ProjectionStatus.STALLED,
        )
    if state.position >= wanted:
        return state.position
    raise ApiError(
        503,
        "projection_behind",
        f"The read model has not reached position {wanted} yet.",
        {
            "projection": projection_name,
            "checkpoint": state.position,
            "min_position": wanted,
            "status": state.status,
            "last_error": state.last_error,
        },
    )


def _read_model(request: Request, name: str) -> tuple[Any, ReadModelScope]:
    """The read model and what the caller may see of it (403 read_not_allowed if nothing).

    Asked before any waiting: a caller who may not read a model must not be able to park
    a request on it either.
    """
    read_model = get_read_models().get(name)
    if read_model is None:
        raise ApiError(
            404,
            "unknown_read_model",
            f"No read model '{name}'.",
            {"known": sorted(get_read_models())},
        )
    return read_model, require_read_model(api_reader(request), name)


READ_MODEL_NAME = OpenApiParameter(
    "name", str, OpenApiParameter.PATH, enum=sorted(get_read_models()), description="A read model."
)


class ReadModelListView(APIView):
    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="read_models_list",
        responses=OpenApiTypes.OBJECT,
        parameters=[READ_MODEL_NAME, ReadModelListParams],
        description="Rows of one read model (see GET /api/registry/ for names), cursor-paginated. "
        "Filter with `?<field>=<value>` (exact match) on the read model's filter fields; any "
        "other parameter is refused (400). The filters, as each read model declares them:\n\n"
        + _filters_doc(),
    )
    def get(self, request: Request, name: str) -> Response:
        read_model, scope = _read_model(request, name)
        # Every parameter is checked before any wait: a bad filter is refused at once.
        params = parse(request, list_params(name, scope.redacted))
        position = _await_position(request, read_model.projection, params)
        filters = {key: value for key, value in params.items() if key in read_model.filter_fields}
        qs = read_model.model.objects.filter(scope.filter, **filters)
        paginator = ReadModelCursor()
        paginator.ordering = read_model.ordering or (read_model.model._meta.pk.name,)
        page = paginator.paginate_queryset(qs, request, view=self)
        serializer = _serializer_for(read_model.model)
        rows = [redact(row, scope) for row in serializer(page, many=True).data]
        response = paginator.get_paginated_response(rows)
        response["X-Projection-Checkpoint"] = str(position)
        return response


class ReadModelDetailView(APIView):
    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="read_models_retrieve",
        responses=OpenApiTypes.OBJECT,
        parameters=[READ_MODEL_NAME, ReadYourWritesParams],
    )
    def get(self, request: Request, name: str, key: str) -> Response:
        read_model, scope = _read_model(request, name)
        position = _await_position(request, read_model.projection, parse(request, ReadYourWritesParams))
        pk_field = read_model.model._meta.pk
        try:
            pk = pk_field.to_python(key)
        except DjangoValidationError:
            raise ApiError(404, "not_found", f"No {name} row '{key[:80]}'.") from None
        # A row outside the caller's scope answers exactly as a missing one.
        row = read_model.model.objects.filter(scope.filter, pk=pk).first()
        if row is None:
            raise ApiError(404, "not_found", f"No {name} row '{key[:80]}'.")
        return Response(
            redact(_serializer_for(read_model.model)(row).data, scope),
            headers={"X-Projection-Checkpoint": str(position)},
        )
