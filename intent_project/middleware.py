"""Request ids: every request gets one (or keeps the client's), echoed in responses and errors.
API responses are never stored by caches. API writes are accepted without the trailing slash."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import is_valid_path
from django.utils.decorators import sync_and_async_middleware

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


# /api/... and /t/<tenant>/api/...: the answers carry balances, payloads and usernames.
_API_PATH = re.compile(r"^/(?:t/[^/]+/)?api/")


@sync_and_async_middleware
def api_responses_are_not_stored(get_response: Any) -> Any:
    """`Cache-Control: no-store` on every API response, errors included.

    Without it a browser, or a shared proxy between the client and TLS termination, may
    keep a balance or a command payload on disk and show it to the next user of the
    machine. Outermost in MIDDLEWARE, so the early answers of the middlewares after it
    (unknown tenant, NUL byte) are covered too.
    """

    def mark(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if _API_PATH.match(request.path):
            response["Cache-Control"] = "no-store"
        return response

    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            return mark(request, await get_response(request))

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        return mark(request, get_response(request))

    return middleware


# Methods that carry a body or change something: a redirect would lose them (see below).
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiWritesWithoutSlashMiddleware:
    """`POST /t/acme/api/commands` is served as `POST /t/acme/api/commands/`.

    Django's APPEND_SLASH answers such a request with a redirect (and raises a RuntimeError
    under DEBUG): clients follow a 301 or 302 with a GET and no body, so the command never
    arrives, and the 301 itself has an empty body that says nothing. On API routes a write
    whose path is unknown as written and known with the slash goes to that route instead;
    reads (GET, HEAD) still get CommonMiddleware's redirect to the canonical URL, which
    repeats them faithfully. After the tenant middleware (it chooses the urlconf), before
    CommonMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if request.method in _WRITES and not path.endswith("/") and _API_PATH.match(request.path):
            urlconf = getattr(request, "urlconf", None)
            if not is_valid_path(path, urlconf) and is_valid_path(f"{path}/", urlconf):
                request.path_info = f"{path}/"
                request.path = f"{request.path}/"
        return self.get_response(request)
