"""Tenant API for commands: POST /t/<tenant>/api/commands/, GET list and detail."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from commands_app import operations
from commands_app.bus import submit
from commands_app.models import Command, CommandStatus
from commands_app.read_policy import api_reader, sees_command, visible_commands
from events_app.personal import Keyring
from intent_project import streams
from intent_project.api.errors import ApiError
from intent_project.api.fields import DateTimeInField, PersonalDataPage, UUIDStringField
from intent_project.api.pagination import StrictCursorPagination
from intent_project.api.params import CursorPageParams, QueryParams, WaitSeconds, parse
from intent_project.api.permissions import IsTenantMember, current_tenant, tenant_role
from intent_project.api.schema import FailureSerializer, JSONObjectField, errors
from intent_project.api.throttling import COMMAND_THROTTLES
from intent_project.rowsets import ByPrimaryKey
from intent_project.tenancy import current_schema, refuse_commands_if_suspended
from intent_project.waits import Recheck, Wait

# Label keys end up in logs, traces and metric labels: short, and no characters that need
# quoting anywhere (spaces, quotes, newlines, markup).
LABEL_KEY = re.compile(r"^[a-zA-Z0-9_.:/-]{1,64}$")


MAX_LABELS = 20
LABEL_VALUE_MAX = 200


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": LABEL_VALUE_MAX},
        "maxProperties": MAX_LABELS,
        "propertyNames": {"pattern": LABEL_KEY.pattern},
    }
)
class LabelsField(serializers.DictField):
    """The client's own tags: short keys (LABEL_KEY), string values."""


class CommandMetadataIn(serializers.Serializer):
    """What the client may say about a command's flow; any other key is refused."""

    correlation_id = UUIDStringField(required=False)
    causation_id = UUIDStringField(required=False)
    # Taken as sent (no trimming), so the document's bounds are the ones applied.
    labels = LabelsField(
        child=serializers.CharField(max_length=LABEL_VALUE_MAX, trim_whitespace=False), required=False
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown metadata field."] for key in unknown})
        attrs = super().to_internal_value(data)
        if len(attrs.get("labels", {})) > MAX_LABELS:
            raise serializers.ValidationError({"labels": [f"At most {MAX_LABELS} labels."]})
        bad_keys = [key for key in attrs.get("labels", {}) if not LABEL_KEY.fullmatch(key)]
        if bad_keys:
            raise serializers.ValidationError(
                {
                    "labels": {
                        key[:80]: ["Label keys are 1-64 characters of letters, digits and _ . : / -."]
                        for key in bad_keys
                    }
                }
            )
        return {key: value if key == "labels" else str(value) for key, value in attrs.items()}


class CommandIn(serializers.Serializer):
    id = UUIDStringField(
        required=False, help_text="Idempotency key. Same id + same body returns the stored command."
    )
    type = serializers.CharField(max_length=100, help_text="A command type from GET /api/registry/.")
    payload = serializers.JSONField(help_text="Validated against the command type's JSON Schema.")
    metadata = CommandMetadataIn(required=False)
    not_before = DateTimeInField(
        required=False,
        allow_null=True,
        help_text="Keep the command pending until this time (ISO 8601; at most a year ahead).",
    )

    def validate_not_before(self, value: datetime | None) -> datetime | None:
        if value is not None and value > timezone.now() + timedelta(days=366):
            raise serializers.ValidationError("At most a year ahead.")
        return value


_DATETIME = serializers.DateTimeField()


def _wire(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _DATETIME.to_representation(value)
    return value


class SagaTriggerOut(serializers.Serializer):
    id = serializers.UUIDField()
    position = serializers.IntegerField()
    type = serializers.CharField()

    class Meta:
        ref_name = "SagaTrigger"


class CommandMetadataOut(serializers.Serializer):
    """Who sent the command, from where, as part of which flow (commands_app.domain.messages)."""

    tenant = serializers.CharField()
    source = serializers.CharField(help_text="`api`, `saga`, `admin` ...")  # type: ignore[assignment]
    user_id = serializers.CharField(allow_null=True)
    username = serializers.CharField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    request_id = serializers.CharField(allow_null=True)
    correlation_id = serializers.UUIDField(allow_null=True)
    causation_id = serializers.UUIDField(allow_null=True)
    received_at = serializers.DateTimeField(allow_null=True)
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    saga = serializers.CharField(required=False, help_text="The saga that issued it.")
    trigger = SagaTriggerOut(required=False, help_text="What the saga reacted to.")
    previous_errors = FailureSerializer(many=True, required=False, help_text="One per operator retry.")
    trace = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="W3C trace context."
    )

    class Meta:
        ref_name = "CommandMetadata"


class RecordedEventOut(SagaTriggerOut):
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.UUIDField()
    version = serializers.IntegerField()

    class Meta:
        ref_name = "RecordedEvent"


class CommandResultOut(serializers.Serializer):
    """What a processed command recorded."""

    events = RecordedEventOut(many=True)
    aggregate_version = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "CommandResult"


class CommandErrorOut(FailureSerializer):
    """Why a command failed, or why its last attempt did (`retrying`)."""

    retrying = serializers.BooleanField(required=False, help_text="Another attempt is scheduled.")

    class Meta:
        ref_name = "CommandError"


# The fields (and so the OpenAPI schema) are the model's, as for any ModelSerializer; only
# the output is built directly from them, because building the serializer's fields anew
# for every response was a fifth of the CPU of POST + GET. A test holds it equal to the
# generic ModelSerializer output. The JSON columns are declared for the schema's sake.
class _CommandPage(PersonalDataPage):
    kind = "command"


class CommandOut(serializers.ModelSerializer):
    """A stored command: its status, then its result or error."""

    payload = JSONObjectField(read_only=True, help_text="As submitted; its schema is the type's.")
    metadata = CommandMetadataOut(read_only=True)
    result = CommandResultOut(read_only=True, allow_null=True, help_text="Once processed.")
    error = CommandErrorOut(read_only=True, allow_null=True, help_text="Once failed, or while retrying.")

    def to_representation(self, instance: Command) -> dict[str, Any]:
        out = {name: _wire(getattr(instance, name)) for name in self.Meta.fields}
        # Personal data is stored sealed; a page of commands shares one prefetched keyring.
        keys = self.context.get("keys") or Keyring()
        out["payload"] = keys.reveal("command", instance.type, out["payload"])
        return out

    class Meta:
        model = Command
        list_serializer_class = _CommandPage
        fields = [
            "id",
            "type",
            "payload",
            "metadata",
            "status",
            "result",
            "error",
            "attempts",
            "aggregate_type",
            "aggregate_id",
            "correlation_id",
            "not_before",
            "created_at",
            "updated_at",
            "processed_at",
        ]
        read_only_fields = fields
        ref_name = "Command"


class CommandCursor(StrictCursorPagination):
    ordering = "-created_at"


class CommandListParams(CursorPageParams):
    status = serializers.ChoiceField(
        choices=CommandStatus.choices, required=False, help_text="Only commands in this status."
    )
    type = serializers.CharField(required=False, help_text="Only commands of this type.")


class SubmitParams(QueryParams):
    pure = True
    wait = WaitSeconds(
        help_text="Hold the response up to this many seconds (max 30) until the command is "
        "final, to submit and learn the outcome in one request. The status code still says "
        "whether the command was stored now (202) or earlier (200); `status` says how far it got."
    )


class CommandReadParams(QueryParams):
    pure = True
    wait = WaitSeconds(help_text="Hold up to this many seconds (max 30) until the status is final.")


IDEMPOTENT_REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    enum=["true"],
    required=True,
    response=[200],
    description="The command was stored by an earlier request with this id and body; nothing was stored now.",
)


class CommandListView(GenericAPIView):
    permission_classes = [IsTenantMember]
    throttle_classes = COMMAND_THROTTLES  # submissions per user and per tenant (POST only)
    serializer_class = CommandOut
    pagination_class = CommandCursor

    def get_queryset(self) -> Any:
        params = parse(self.request, CommandListParams)
        qs = Command.objects.filter(visible_commands(api_reader(self.request)))
        if "status" in params:
            qs = qs.filter(status=params["status"])
        if "type" in params:
            qs = qs.filter(type=params["type"])
        return qs

    @extend_schema(
        operation_id="listCommands",
        description="The commands the caller may see, newest first.",
        parameters=[CommandListParams],
        responses=CommandOut(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CommandOut(page, many=True).data)

    @extend_schema(
        operation_id="submitCommand",
        description="Submit a command: 202 when stored now, 200 (`Idempotent-Replayed: true`) when "
        "a command with this `id` and the same body was stored before. The `payload` is the "
        "command type's (see the variants, or GET /api/registry/).",
        request=CommandIn,
        parameters=[SubmitParams, IDEMPOTENT_REPLAYED],
        responses={
            202: OpenApiResponse(CommandOut, description="Stored now."),
            200: OpenApiResponse(CommandOut, description="Stored before, with the same body."),
            **errors((409, "A command with this id was stored with a different body.")),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        envelope = CommandIn(data=request.data)
        envelope.is_valid(raise_exception=True)
        data = envelope.validated_data
        wait = parse(request, SubmitParams)["wait"]
        tenant = current_tenant(request)
        refuse_commands_if_suspended(tenant)
        # The id is settled before the command is stored, so a wait can listen for it
        # before a worker could possibly finish it. Once stored, a wait re-reads it by id
        # (the front door runs that GET on each wake, never the POST again).
        command_id = data.get("id") or uuid.uuid4()
        with Wait(request, current_schema(), command_id, wait) as waiting:
            submission = submit(
                schema_name=current_schema(),
                tenant=tenant.slug,
                type_name=data["type"],
                payload=data["payload"],
                role=tenant_role(request),
                user_id=str(request.user.pk),
                username=request.user.get_username(),
                command_id=command_id,
                client_metadata=data.get("metadata") or {},
                source="api",
                request_id=getattr(request, "request_id", None),
                not_before=data.get("not_before"),
            )
            code, headers = (
                (status.HTTP_202_ACCEPTED, {})
                if submission.created
                else (status.HTTP_200_OK, {"Idempotent-Replayed": "true"})
            )
            recheck = Recheck(f"{request.path_info.rstrip('/')}/{command_id}/?wait={wait}", code, headers)
            command = waiting.until(submission.command, _reread(submission.command), _is_final, recheck)
        return Response(CommandOut(command).data, status=code, headers=headers)


def _reread(command: Command) -> Callable[[], Command]:
    def reread() -> Command:
        command.refresh_from_db()
        return command

    return reread


def _is_final(command: Command) -> bool:
    return command.is_final


class CommandDetailView(GenericAPIView):
    permission_classes = [IsTenantMember]
    serializer_class = CommandOut

    @extend_schema(
        operation_id="getCommand",
        description="One command: its status, result or error.",
        parameters=[CommandReadParams],
        responses=CommandOut,
    )
    def get(self, request: Request, command_id: Any) -> Response:
        # Asked before any waiting: nobody parks a request on a command it may not see (and
        # under the front door every later run of a parked wait asks again).
        command = visible_command(request, command_id)
        # Woken by a notification when the command becomes final (intent_project/waits.py);
        # read again after subscribing, so a change between the two reads is not missed.
        wait = parse(request, CommandReadParams)["wait"]
        with Wait(request, current_schema(), command_id, wait) as waiting:
            reread = _reread(command)
            command = waiting.until(waiting.read_again(command, reread), reread, _is_final)
        return Response(CommandOut(command).data)


_BY_ID = ByPrimaryKey(Command)


def visible_command(request: Request, command_id: Any) -> Command:
    """The command, if the caller may see it; one it may not see answers like a missing one.
    Read by its key, then tested with the read policy's mirror of visible_commands."""
    command = _BY_ID.get(command_id)
    if command is None or not sees_command(api_reader(request))(command):
        raise ApiError(404, "not_found", f"No command {command_id} in this tenant.")
    return command


class CommandStreamView(streams.StreamView):
    """One command's status, live, until it is final."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        operation_id="streamCommand",
        responses={
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="The stream."),
            **errors(429),
        },
        description=(
            "Server-Sent Events (`text/event-stream`): a `status` message with the command as "
            "`GET /commands/{command_id}/` returns it, at once and at every change of its status "
            "(`pending`, `consumed`, then `processed` or `failed`); the stream ends after the final "
            "one. `: keep-alive` comments meanwhile; an `error` message (the API's error body) "
            "ends it if the caller may no longer see the command. Counts against STREAMS_PER_USER."
        ),
    )
    def get(self, request: Request, command_id: Any) -> Any:
        reader = api_reader(request)
        visible_command(request, command_id)
        schema = current_schema()
        slot = streams.take_place(request)
        detail = request.path_info.removesuffix("stream/")

        def read() -> bytes | None:
            row = Command.objects.filter(visible_commands(reader), pk=command_id).first()
            return JSONRenderer().render(CommandOut(row).data) if row is not None else None

        order = streams.CommandStreamOrder(
            keys=(f"{schema}:{command_id}", f"{schema}:consumed:{command_id}"), path=detail, slot=slot
        )
        return streams.respond(request, order, streams.blocking_command(schema, str(command_id), slot, read))


class CommandRetryView(GenericAPIView):
    """Send a failed command again (it appended nothing when it failed); who may is
    commands_app.operations.retry's decision."""

    permission_classes = [IsTenantMember]
    serializer_class = CommandOut

    @extend_schema(
        operation_id="retryCommand",
        description="Send a failed command again (it recorded nothing when it failed).",
        request=None,
        responses={202: CommandOut, **errors((409, "Only a failed command can be retried."))},
    )
    def post(self, request: Request, command_id: Any) -> Response:
        refuse_commands_if_suspended(current_tenant(request))
        command = operations.retry(command_id, by=operations.api_operator(request))
        return Response(CommandOut(command).data, status=status.HTTP_202_ACCEPTED)
