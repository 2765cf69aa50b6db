"""The one error shape, and the one place where exceptions become HTTP responses.

Every error from every endpoint looks like::

    {"error": {"code": "validation_error", "message": "...", "details": {...}, "request_id": "..."}}

`code` is stable and machine-readable, `message` is for humans, `details` carries field
errors where relevant. Views raise; they never build error responses themselves.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from commands_app.domain.errors import IntentError
from intent_project.tenants.policy import AccessRefused

# Every `code` an HTTP error answer can carry, with what it means: the OpenAPI document's
# `ErrorCode` enum (intent_project/api/schema.py). A new code is added here first;
# tests/unit/test_error_codes.py finds codes raised anywhere else.
ERROR_CODES: dict[str, str] = {
    "bad_request": "The request was rejected as malformed (e.g. a bad Host header).",
    "malformed_request": "The body is not valid JSON (or not what its Content-Type says).",
    "validation_error": "A field or query parameter is invalid; `details.fields` names each.",
    "unknown_command_type": "No command of this `type`; see GET /api/registry/.",
    "invalid_payload": "The payload does not match the command type's schema; `details` says where.",
    "invalid_credentials": "Unable to log in with the given username and password.",
    "not_authenticated": "No credentials: send `Authorization: Bearer <token>`.",
    "authentication_failed": "The token is invalid, expired or revoked, or the header is malformed.",
    "permission_denied": "The caller may not do this.",
    "not_a_member": "The caller has no role in this tenant.",
    "forbidden": "The caller's role may not send this command type.",
    "internal_command": "Only the platform's sagas send this command type.",
    "read_not_allowed": "The caller's role reads nothing of this read model.",
    "role_not_grantable": "This caller may not grant that role.",
    "protected_member": "This membership cannot be changed by this caller.",
    "superuser_only": "Only a superuser may do this.",
    "csrf_failed": "A session-authenticated write without a valid CSRF token.",
    "not_found": "Nothing here, or nothing the caller may see.",
    "tenant_not_found": "There is no such tenant.",
    "membership_not_found": "The user has no role in this tenant.",
    "unknown_read_model": "There is no read model of this name.",
    "method_not_allowed": "The path does not take this HTTP method.",
    "not_acceptable": "The server cannot answer in a media type the Accept header allows.",
    "idempotency_conflict": "A command with this id was stored with a different body.",
    "conflict": "Conflicts with what is stored.",
    "not_retryable": "Only a failed command can be retried.",
    "operation_refused": "The projection is not in a state that allows this operation.",
    "user_exists": "A user with this username exists.",
    "tenant_exists": "A tenant with this slug exists.",
    "tenant_suspended": "The tenant is suspended: it can be read, but takes no commands.",
    "subject_erased": "The data subject's personal data was erased; no new personal data is recorded for it.",
    "payload_too_large": "The command's payload is larger than the server accepts.",
    "request_too_large": "The request body is larger than the server accepts.",
    "unsupported_media_type": "The body's Content-Type is not application/json.",
    "throttled": "Too many requests; wait `Retry-After` seconds.",
    "locked_out": "Too many failed logins; logins are refused for `Retry-After` seconds.",
    "too_many_streams": "The caller already holds STREAMS_PER_USER live streams.",
    "too_many_waits": "The caller already holds WAITS_PER_USER waiting requests.",
    "server_error": "The server failed; the error was logged under `request_id`.",
    "service_unavailable": "The database is unavailable; send the same request again after `Retry-After`.",
    "projection_behind": "The read model has not reached `min_position` within `wait`.",
    "error": "Any other refusal (its message says what).",
}


class ApiError(drf.APIException):
    """An API error with our code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.error_code = code
        self.message = message
        self.details = details


def _body(code: str, message: str, details: Any, request: HttpRequest | None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "details": details if details is not None else {},
    }
    request_id = getattr(request, "request_id", None)
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def error_response(
    status: int, code: str, message: str, details: Any = None, request: HttpRequest | None = None
) -> JsonResponse:
    return JsonResponse(_body(code, message, details, request), status=status)


# The database could not be reached or dropped the connection: nothing was stored, so the
# same request (same id, same body) may simply be sent again.
DATABASE_ERRORS = (OperationalError, InterfaceError)
_DATABASE_UNAVAILABLE = "The database is unavailable; retry shortly (same id, same body)."


def database_unavailable(request: HttpRequest | None = None) -> JsonResponse:
    """The 503 for a database error raised outside a DRF view (middleware, admin pages)."""
    response = error_response(503, "service_unavailable", _DATABASE_UNAVAILABLE, request=request)
    response["Retry-After"] = "1"
    return response


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_request",
    drf.AuthenticationFailed: "authentication_failed",
    drf.NotAuthenticated: "not_authenticated",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
    drf.ValidationError: "validation_error",
}

_STATUS_FOR_INTENT: dict[str, int] = {
    "unknown_command_type": 400,
    "invalid_payload": 400,
    "validation_error": 400,
    "payload_too_large": 413,
    "forbidden": 403,
    "internal_command": 403,
    "not_a_member": 403,
    "read_not_allowed": 403,
    "idempotency_conflict": 409,
    "not_found": 404,
    "conflict": 409,
    "not_retryable": 409,
    "operation_refused": 409,
    "tenant_suspended": 409,
    "subject_erased": 409,
}


def _drf_message(detail: Any) -> str:
    if isinstance(detail, (list, tuple)) and detail:
        return _drf_message(detail[0])
    if isinstance(detail, dict):
        return "Some fields are invalid."
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    status, code, message, details = _classify(exc)
    if status is None:
        return None  # not ours: a real server error, logged and answered by handler500
    set_rollback()
    response = Response(_body(code, message, details, request), status=status)
    if status == 503:
        response["Retry-After"] = "1"
    if isinstance(exc, drf.APIException):
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    return response


def _classify(exc: Exception) -> tuple[int | None, str, str, Any]:
    if isinstance(exc, ApiError):
        return exc.status_code, exc.error_code, exc.message, exc.details
    if isinstance(exc, AccessRefused):
        return exc.status, exc.code, exc.message, exc.details
    if isinstance(exc, IntentError):
        return _STATUS_FOR_INTENT.get(exc.code, 400), exc.code, exc.message, exc.details
    if isinstance(exc, DATABASE_ERRORS):
        return 503, "service_unavailable", _DATABASE_UNAVAILABLE, None
    if isinstance(exc, DjangoValidationError):
        # e.g. a forged pagination cursor whose values do not fit the ordering field
        return 400, "validation_error", "; ".join(exc.messages) or "Invalid value.", None
    if isinstance(exc, Http404):
        return 404, "not_found", "Not found.", None
    if isinstance(exc, PermissionDenied):
        return 403, "permission_denied", str(exc) or "You do not have permission to do this.", None
    if isinstance(exc, RequestDataTooBig):
        return 413, "request_too_large", "The request body is larger than the server accepts.", None
    if isinstance(exc, SuspiciousOperation):
        return 400, "bad_request", "The request was rejected as malformed.", None
    if isinstance(exc, drf.APIException):
        code = _DRF_CODES.get(type(exc))
        if code is None:
            code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), "error")
        details: Any = None
        if isinstance(exc, drf.ValidationError):
            details = {"fields": exc.detail} if isinstance(exc.detail, dict) else {"errors": exc.detail}
        return exc.status_code, code, _drf_message(exc.detail), details
    return None, "", "", None


# Django-level handlers, for errors raised outside DRF views (admin, unknown URLs, ...).
def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return error_response(
            413,
            "request_too_large",
            "The request body is larger than the server accepts.",
            request=request,
        )
    return error_response(400, "bad_request", "The request was rejected as malformed.", request=request)


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(403, "permission_denied", "You do not have permission to do this.", request=request)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(404, "not_found", "Not found.", request=request)


def handler500(request: HttpRequest) -> JsonResponse:
    # Django calls this while handling the exception, so it is still the current one.
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return database_unavailable(request)
    return error_response(500, "server_error", "The server failed; the error was logged.", request=request)


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return error_response(403, "csrf_failed", f"CSRF check failed: {reason}", request=request)
