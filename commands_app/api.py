"""Tenant API for commands: POST /t/<tenant>/api/commands/, GET list and detail."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from commands_app.bus import retry, submit
from commands_app.models import Command, CommandStatus
from intent_project import notifications
from intent_project.api.errors import ApiError
from intent_project.api.params import wait_seconds
from intent_project.api.permissions import IsTenantMember, current_tenant, tenant_role
from intent_project.api.throttling import COMMAND_THROTTLES
from intent_project.tenancy import current_schema


class CommandMetadataIn(serializers.Serializer):
    correlation_id = serializers.UUIDField(required=False)
    causation_id = serializers.UUIDField(required=False)
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown metadata field."] for key in unknown})
        attrs = super().to_internal_value(data)
        if len(attrs.get("labels", {})) > 20:
            raise serializers.ValidationError({"labels": ["At most 20 labels."]})
        return {key: value if key == "labels" else str(value) for key, value in attrs.items()}


class CommandIn(serializers.Serializer):
    id = serializers.UUIDField(
        required=False, help_text="Idempotency key. Same id + same body returns the stored command."
    )
    type = serializers.CharField(max_length=100, help_text="A command type from GET /api/registry/.")
    payload = serializers.JSONField(help_text="Validated against the command type's JSON Schema.")
    metadata = CommandMetadataIn(required=False)
    not_before = serializers.DateTimeField(
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


class CommandOut(serializers.ModelSerializer):
    """A stored command as the API shows it.

    The fields (and so the OpenAPI schema) are the model's, as for any ModelSerializer;
    only the output is built directly from them, because building the serializer's
    fields anew for every response was a fifth of the CPU of POST + GET. A test holds it
    equal to the generic ModelSerializer output.
    """

    def to_representation(self, instance: Command) -> dict[str, Any]:
        return {name: _wire(getattr(instance, name)) for name in self.Meta.fields}

    class Meta:
        model = Command
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


class CommandCursor(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class CommandListView(GenericAPIView):
    permission_classes = [IsTenantMember]
    throttle_classes = COMMAND_THROTTLES  # submissions per user and per tenant (POST only)
    serializer_class = CommandOut
    pagination_class = CommandCursor

    def get_queryset(self) -> Any:
        qs = Command.objects.all()
        status_filter = self.request.query_params.get("status")
        if status_filter:
            if status_filter not in CommandStatus.values:
                raise ApiError(
                    400,
                    "validation_error",
                    f"Unknown status '{status_filter}'.",
                    {"fields": {"status": [f"One of {', '.join(CommandStatus.values)}."]}},
                )
            qs = qs.filter(status=status_filter)
        type_filter = self.request.query_params.get("type")
        if type_filter:
            qs = qs.filter(type=type_filter)
        return qs

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=CommandStatus.values),
            OpenApiParameter("type", str),
        ],
        responses=CommandOut(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CommandOut(page, many=True).data)

    @extend_schema(
        request=CommandIn,
        parameters=[
            OpenApiParameter(
                "wait",
                OpenApiTypes.FLOAT,
                description="Hold the response up to this many seconds (max 30) until the command is "
                "final, to submit and learn the outcome in one request. The status code still says "
                "whether the command was stored now (202) or earlier (200); `status` says how far it got.",
            )
        ],
        responses={202: CommandOut, 200: CommandOut},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        envelope = CommandIn(data=request.data)
        envelope.is_valid(raise_exception=True)
        data = envelope.validated_data
        wait = wait_seconds(request)
        tenant = current_tenant(request)
        # The id is settled before the command is stored, so a wait can listen for it
        # before a worker could possibly finish it.
        command_id = data.get("id") or uuid.uuid4()
        with (
            notifications.subscribe(current_schema(), command_id)
            if wait > 0
            else contextlib.nullcontext() as done
        ):
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
            command = submission.command
            if done is not None:
                _await_final(command, done, time.monotonic() + wait)
        body = CommandOut(command).data
        if submission.created:
            return Response(body, status=status.HTTP_202_ACCEPTED)
        return Response(body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})


def _await_final(command: Command, notified: notifications.Subscription, deadline: float) -> None:
    """Re-read `command` until it is final or the deadline passes (woken by its notification;
    without one, re-read every 0.5 s)."""
    while not command.is_final and time.monotonic() < deadline:
        notified.wait(min(notifications.FALLBACK_POLL_SECONDS, deadline - time.monotonic()))
        command.refresh_from_db()


class CommandDetailView(GenericAPIView):
    permission_classes = [IsTenantMember]
    serializer_class = CommandOut

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait",
                OpenApiTypes.FLOAT,
                description="Hold up to this many seconds (max 30) until the status is final.",
            )
        ],
        responses=CommandOut,
    )
    def get(self, request: Request, command_id: Any) -> Response:
        wait = wait_seconds(request)
        if wait <= 0:
            return Response(CommandOut(self._command(command_id)).data)
        deadline = time.monotonic() + wait
        # Woken by a notification when the command becomes final (notifications.py); the
        # row is always re-read, and without a notification it is re-read every 0.5 s.
        with notifications.subscribe(current_schema(), command_id) as notified:
            command = self._command(command_id)
            _await_final(command, notified, deadline)
        return Response(CommandOut(command).data)

    @staticmethod
    def _command(command_id: Any) -> Command:
        try:
            return Command.objects.get(pk=command_id)
        except Command.DoesNotExist:
            raise ApiError(404, "not_found", f"No command {command_id} in this tenant.") from None


class CommandRetryView(GenericAPIView):
    """Send a failed command again (it appended nothing when it failed)."""

    permission_classes = [IsTenantMember]
    serializer_class = CommandOut

    @extend_schema(request=None, responses={202: CommandOut})
    def post(self, request: Request, command_id: Any) -> Response:
        command = retry(command_id, role=tenant_role(request), operator=request.user.get_username())
        return Response(CommandOut(command).data, status=status.HTTP_202_ACCEPTED)
