"""Request ids: every request gets one (or keeps the client's), echoed in responses and errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from intent_project.api.errors import error_response

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request.request_id = supplied if _CLIENT_ID.fullmatch(supplied) else uuid.uuid4().hex  # type: ignore[attr-defined]
        if _has_nul(request):
            # PostgreSQL cannot store or compare NUL; refuse it before any lookup sees it.
            response: HttpResponse = error_response(
                400, "bad_request", "URLs and headers must not contain the NUL character.", request=request
            )
        else:
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "").lower():
        return True
    return any(
        "\x00" in value
        for key, value in request.META.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    )
