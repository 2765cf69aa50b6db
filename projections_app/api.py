"""Tenant API for the read side: projection health and read-only read models."""

from __future__ import annotations

import functools
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.schemas import DefaultSchema
from rest_framework.views import APIView

from commands_app.operations import api_operator
from commands_app.read_policy import ReadModelScope, api_reader, redact, require_read_model
from commands_app.registry import get_registry
from intent_project import notifications
from intent_project.api.errors import ApiError
from intent_project.api.pagination import StrictCursorPagination
from intent_project.api.params import (
    POSITION_MAX,
    CursorPageParams,
    QueryParams,
    WaitSeconds,
    model_field_params,
    parse,
)
from intent_project.api.permissions import IsTenantMember
from intent_project.api.schema import FailureSerializer, JSONObjectField, errors
from intent_project.db import replicas
from intent_project.tenancy import current_schema
from intent_project.waits import Wait
from projections_app import operations
from projections_app.lookup import checkpoint, checkpoints, projection_named
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.projectors.base import Projection
from projections_app.registry import get_consumers, get_read_models
from projections_app.runner import head_position

CONSUMER_KINDS = ("projection", "saga")


class ProjectionOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=CONSUMER_KINDS)
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ProjectionStatus.choices)
    checkpoint = serializers.IntegerField(help_text="The last position applied.")
    head = serializers.IntegerField(help_text="The log's last position.")
    lag = serializers.IntegerField(help_text="Positions between the checkpoint and the log's head.")
    failures = serializers.IntegerField(help_text="Failed attempts at the next event.")
    last_error = FailureSerializer(allow_null=True)
    event_types = serializers.ListField(child=serializers.CharField())
    read_models = serializers.ListField(child=serializers.CharField())
    retry_at = serializers.DateTimeField(allow_null=True)
    dead_letters = serializers.IntegerField(help_text="Skipped events not replayed yet.")
    updated_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Projection"


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

    @extend_schema(
        operation_id="listProjections",
        description="Every projection and saga: status, checkpoint and lag.",
        responses=ProjectionOut(many=True),
    )
    def get(self, request: Request) -> Response:
        with replicas.reading(request):
            states = checkpoints()
            head = head_position()
        return Response([describe(p, states[p.name], head) for p in get_consumers()])


def _state_of(name: str) -> tuple[Projection, ProjectionState]:
    projection = projection_named(name)
    return projection, checkpoint(projection)


class DeadLetterOut(serializers.ModelSerializer):
    error = FailureSerializer()

    class Meta:
        ref_name = "DeadLetter"
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


class ProjectionDetailOut(ProjectionOut):
    dead_letter_records = DeadLetterOut(many=True, help_text="The latest 100, newest first.")

    class Meta:
        ref_name = "ProjectionDetail"


class ProjectionSkippedOut(ProjectionOut):
    dead_letter = DeadLetterOut(help_text="Where the skipped event went.")

    class Meta:
        ref_name = "ProjectionSkipped"


REFUSED = errors((409, "The projection is not in a state that allows this."))


class ProjectionDetailView(APIView):
    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="getProjection",
        description="One projection or saga, with its latest dead letters.",
        responses=ProjectionDetailOut,
    )
    def get(self, request: Request, name: str) -> Response:
        with replicas.reading(request):
            projection, state = _state_of(name)
            body = describe(projection, state, head_position())
            body["dead_letter_records"] = DeadLetterOut(
                DeadLetter.objects.filter(projection=name).order_by("-created_at")[:100], many=True
            ).data
        return Response(body)


class ProjectionResumeView(APIView):
    """Retry the event a stalled projection stopped at."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="resumeProjection",
        description="Retry the event a stalled projection stopped at.",
        request=None,
        responses={200: ProjectionOut, **REFUSED},
    )
    def post(self, request: Request, name: str) -> Response:
        operations.resume(name, by=api_operator(request))
        projection, state = _state_of(name)
        return Response(describe(projection, state, head_position()))


class ProjectionSkipView(APIView):
    """Move the event a stalled projection stopped at into a dead letter and go on."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="skipProjectionEvent",
        description="Move the event a stalled projection stopped at into a dead letter and go on.",
        request=None,
        responses={200: ProjectionSkippedOut, **REFUSED},
    )
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

    @extend_schema(
        operation_id="replayDeadLetter",
        description="Apply a skipped event now and clear its dead letter.",
        request=None,
        responses={200: DeadLetterOut, **REFUSED},
    )
    def post(self, request: Request, name: str, letter_id: int) -> Response:
        letter = operations.replay_dead_letter(letter_id, by=api_operator(request), projection=name)
        return Response(DeadLetterOut(letter).data)


@functools.cache
def row_serializer(name: str) -> type[serializers.ModelSerializer]:
    """Rows of read model `name`: every column of its model, typed as the model types it. A
    field some role has redacted may be null (`redact` nulls it, keeping the shape)."""
    model = get_read_models()[name].model
    rule = get_registry().read_rules.get(name)
    redactable = frozenset().union(*rule.redacted.values()) if rule else frozenset()
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "fields": "__all__",
            "ref_name": model.__name__,
            "read_only_fields": [field.name for field in model._meta.concrete_fields],
            "extra_kwargs": {field: {"allow_null": True} for field in redactable},
        },
    )
    mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.JSONField: JSONObjectField}
    return type(
        f"{model.__name__}Row",
        (serializers.ModelSerializer,),
        {"Meta": meta, "serializer_field_mapping": mapping, "__doc__": model.__doc__},
    )


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
        state = checkpoint(projection)
        state = waiting.until(
            state,
            lambda: checkpoint(projection),
            lambda s: s.position >= wanted or s.status == ProjectionStatus.STALLED,
            poll=_replica_poll(projection, state, wanted),
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


def _replica_poll(projection: Projection, state: ProjectionState, wanted: int) -> float | None:
    """Read from a replica that has not replayed position `wanted` yet although the primary
    has passed it: no notification will say when the replica has, so look again every
    REPLICA_POLL_SECONDS. Otherwise the notification of the projection's move wakes us."""
    if replicas.current() is None or state.position >= wanted:
        return None
    with replicas.primary():
        ahead = checkpoint(projection).position >= wanted
    return replicas.POLL_SECONDS if ahead else None


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


class ReadModelListView(APIView):
    """Rows of one read model, cursor-paginated, filtered on its filter fields. Documented
    once per read model (`documented_read_model_views`)."""

    permission_classes = [IsTenantMember]
    schema = None  # one route for every read model: each is documented on its own

    def get(self, request: Request, name: str) -> Response:
        read_model, scope = _read_model(request, name)
        # Every parameter is checked before any wait: a bad filter is refused at once.
        params = parse(request, list_params(name, scope.redacted))
        with replicas.reading(request):
            position = _await_position(request, read_model.projection, params)
            filters = {key: value for key, value in params.items() if key in read_model.filter_fields}
            qs = read_model.model.objects.filter(scope.filter, **filters)
            paginator = ReadModelCursor()
            paginator.ordering = read_model.ordering or (read_model.model._meta.pk.name,)
            page = paginator.paginate_queryset(qs, request, view=self)
            rows = [redact(row, scope) for row in row_serializer(name)(page, many=True).data]
        response = paginator.get_paginated_response(rows)
        response["X-Projection-Checkpoint"] = str(position)
        return response


class ReadModelDetailView(APIView):
    """One row of a read model, by its key. Documented once per read model."""

    permission_classes = [IsTenantMember]
    schema = None

    def get(self, request: Request, name: str, key: str) -> Response:
        read_model, scope = _read_model(request, name)
        params = parse(request, ReadYourWritesParams)
        pk_field = read_model.model._meta.pk
        try:
            pk = pk_field.to_python(key)
        except DjangoValidationError:
            raise ApiError(404, "not_found", f"No {name} row '{key[:80]}'.") from None
        with replicas.reading(request):
            position = _await_position(request, read_model.projection, params)
            # A row outside the caller's scope answers exactly as a missing one.
            row = read_model.model.objects.filter(scope.filter, pk=pk).first()
            if row is None:
                raise ApiError(404, "not_found", f"No {name} row '{key[:80]}'.")
            body = redact(row_serializer(name)(row).data, scope)
        return Response(body, headers={"X-Projection-Checkpoint": str(position)})


# -- the OpenAPI document: one list and one detail operation per read model ---------------------
PROJECTION_CHECKPOINT = OpenApiParameter(
    "X-Projection-Checkpoint",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    required=True,
    response=[200],
    description="The projection's checkpoint the answer reflects (at least `min_position`).",
)
_KEY_TYPES = ((models.UUIDField, OpenApiTypes.UUID), (models.IntegerField, OpenApiTypes.INT))


def _readers_doc(name: str) -> str:
    rule = get_registry().read_rules.get(name)
    said = []
    if rule is not None and rule.all_rows:
        said.append(f"every row: {', '.join(sorted(rule.all_rows))}")
    if rule is not None and rule.own_rows:
        said.append(f"the rows whose `{rule.own_field}` is their user id: {', '.join(sorted(rule.own_rows))}")
    for role, fields in sorted((rule.redacted if rule else {}).items()):
        said.append(
            f"{role} reads {', '.join(f'`{f}`' for f in sorted(fields))} as null (and cannot filter on them)"
        )
    return "Who reads it besides the tenant admin: " + ("; ".join(said) or "nobody") + "."


def documented_read_model_views(name: str) -> tuple[type[APIView], type[APIView]]:
    """For the OpenAPI document only (intent_project/urls_docs.py): read model `name`'s list
    and detail as operations of their own, with its typed rows, its key and its filters."""
    read_model = get_read_models()[name]
    camel = "".join(part.capitalize() for part in name.split("_"))
    pk = read_model.model._meta.pk
    key_type = next((t for cls, t in _KEY_TYPES if isinstance(pk, cls)), OpenApiTypes.STR)
    filters = [f for f in list_params(name)().fields if f in read_model.filter_fields]
    described = f"{(read_model.model.__doc__ or '').strip()} {_readers_doc(name)}"
    listing = _documented(
        ReadModelListView,
        f"{camel}ListView",
        {"pagination_class": ReadModelCursor},
        operation_id=f"list{camel}Rows",
        tags=["read-models"],
        description=f"Rows of `{name}`, in `{', '.join(read_model.ordering or (pk.name,))}` order. "
        + (f"Filters (exact match): {', '.join(f'`{f}`' for f in filters)}. " if filters else "")
        + described,
        parameters=[list_params(name), PROJECTION_CHECKPOINT],
        responses=row_serializer(name)(many=True),
    )
    detail = _documented(
        ReadModelDetailView,
        f"{camel}DetailView",
        {},
        operation_id=f"get{camel}Row",
        tags=["read-models"],
        description=f"One row of `{name}`, by its `{pk.name}`. {described}",
        parameters=[
            OpenApiParameter("key", key_type, OpenApiParameter.PATH, description=f"The row's `{pk.name}`."),
            ReadYourWritesParams,
            PROJECTION_CHECKPOINT,
        ],
        responses=row_serializer(name),
    )
    return listing, detail


def _documented(base: type[APIView], name: str, attrs: dict[str, Any], **schema: Any) -> type[APIView]:
    """A subclass of `base` whose GET is documented as `schema` says."""

    def get(self: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        return base.get(self, request, *args, **kwargs)  # type: ignore[attr-defined, no-any-return]

    return type(name, (base,), {**attrs, "schema": DefaultSchema(), "get": extend_schema(**schema)(get)})
