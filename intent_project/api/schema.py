"""What the OpenAPI document says besides each view's success: errors and headers.

Views declare their successful answers with `extend_schema`, and the errors only they can
give with `errors(409, ...)`. `ApiSchema` adds, from the operation itself, the errors every
operation of its kind can answer, all in the one `Error` shape (intent_project/api/errors.py):

- 400 when it takes a body or query parameters; 413 and 415 when it takes a body;
- 401 when it reads credentials, 403 when it needs some; 404 when its path has parameters;
- 429 when a throttle counts its method or it takes `?wait=`; 503 (with `Retry-After`) for every operation.

A query parameter may be sent empty, which means "not given". Every response carries `X-Request-ID`; 429 and 503 carry `Retry-After`. Operation
descriptions come only from `extend_schema(description=...)`: docstrings are written for
the code's readers, not for the API's.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from intent_project.api.errors import ERROR_CODES

# ENUM_NAME_OVERRIDES names the `code` enum `ErrorCode` by these choices.
ERROR_CODE_CHOICES = tuple(ERROR_CODES.items())

ERROR_STATUSES: dict[int, str] = {
    400: "The request is invalid: `details.fields` names each bad field or parameter.",
    401: "No valid credentials: send `Authorization: Bearer <token>` (POST /api/auth/token/).",
    403: "The caller may not do this (`not_a_member`, `forbidden`, `permission_denied` ...).",
    404: "Not found, or not visible to the caller.",
    409: "Conflicts with what is stored.",
    413: "The body is larger than the server accepts.",
    415: "The body is not `application/json`.",
    429: "Too many requests: wait `Retry-After` seconds.",
    503: "Unavailable for now (the database, or a read model behind `min_position`): send the "
    "same request again after `Retry-After` seconds.",
}


class ErrorInfoSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=ERROR_CODE_CHOICES, help_text="Stable and machine-readable.")
    message = serializers.CharField(help_text="For humans; may change.")
    details = serializers.DictField(help_text="Field errors under `fields`; other facts by code.")
    request_id = serializers.CharField(
        required=False, help_text="The request's `X-Request-ID`, to find its log lines."
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer."""

    error = ErrorInfoSerializer()


class FailureSerializer(serializers.Serializer):
    """Why something failed (a command, a projection's event): a code, a message, facts."""

    code = serializers.CharField(help_text="Stable and machine-readable, e.g. `insufficient_funds`.")
    message = serializers.CharField()
    details = serializers.DictField()


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON column that holds an object: documented as one, not as any JSON value."""


def errors(*statuses: int | tuple[int, str]) -> dict[int, OpenApiResponse]:
    """Error answers for `extend_schema(responses={...})`: `errors(409)`, or in the view's
    own words, `errors((409, "The id was used for another body."))`."""
    chosen = dict(s if isinstance(s, tuple) else (s, ERROR_STATUSES[s]) for s in statuses)
    return {status: OpenApiResponse(ErrorSerializer, description=text) for status, text in chosen.items()}


REQUEST_ID_HEADER = {
    "schema": {"type": "string"},
    "description": "The request's id (the client's `X-Request-ID` if it sent a valid one): "
    "in every log line of the request and in its error body.",
}
RETRY_AFTER_HEADER = {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds to wait."}


class ApiSchema(AutoSchema):
    def get_description(self) -> str:  # type: ignore[override]
        return ""

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                parameter["allowEmptyValue"] = True  # `?wait=` means "not given" (params.parse)
        if operation.get("security") == [{}]:
            del operation["security"]  # open to anyone: no credentials to send at all
        responses = operation["responses"]
        for status in sorted(self._error_statuses(operation)):
            answer = OpenApiResponse(ErrorSerializer, description=ERROR_STATUSES[status])
            responses.setdefault(str(status), self._get_response_for_code(answer, str(status)))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> set[int]:
        places = {parameter["in"] for parameter in operation.get("parameters", [])}
        has_body = "requestBody" in operation
        # One requirement per accepted scheme, `{}` when none is needed.
        security = operation.get("security", [])
        schemes = [requirement for requirement in security if requirement]
        statuses = {503}
        if has_body or "query" in places:
            statuses.add(400)
        if has_body:
            statuses |= {413, 415}
        if schemes:
            statuses.add(401)  # a bad token is refused even where none is needed
        if schemes and {} not in security:
            statuses.add(403)
        if "path" in places:
            statuses.add(404)
        queried = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if "wait" in queried:
            statuses.add(429)  # beyond WAITS_PER_USER (intent_project/waits.py)
        throttles = getattr(self.view, "throttle_classes", ())
        if any(getattr(t, "methods", None) is None or self.method in t.methods for t in throttles):
            statuses.add(429)
        return statuses

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        trims = isinstance(field, serializers.CharField) and field.trim_whitespace
        if direction == "request" and trims and not field.allow_blank and "pattern" not in schema:
            # DRF trims the value first, so one of only spaces is refused as blank.
            schema["pattern"] = r"\S"
        return schema

    def _get_response_headers_for_code(self, status_code: str, direction: Any = "response") -> Any:
        headers = super()._get_response_headers_for_code(status_code, direction)
        headers.setdefault("X-Request-ID", REQUEST_ID_HEADER)
        if status_code == "503":
            headers.setdefault("Retry-After", {**RETRY_AFTER_HEADER, "required": True})
        elif status_code == "429":
            headers.setdefault("Retry-After", RETRY_AFTER_HEADER)
        return headers
