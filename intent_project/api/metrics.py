"""`GET /metrics`: the Prometheus text of intent_project/metrics.py, for whoever holds
METRICS_TOKEN (`Authorization: Bearer <token>`, as a Prometheus scrape config sends it)."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from intent_project.api.errors import error_response
from intent_project.api.schema import errors
from intent_project.metrics import exposition


# No session, no cookie: a scrape carries its token, so there is nothing for CSRF to guard,
# and a method other than GET gets its 405 rather than the CSRF check's 403.
@csrf_exempt
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        # The method first: the path takes GET whether or not metrics are on.
        response = error_response(
            405, "method_not_allowed", f"{request.method} is not allowed here; use GET.", request=request
        )
        response["Allow"] = "GET, HEAD"
        return response
    token: str = settings.METRICS_TOKEN
    if not token:
        return error_response(
            404, "not_found", "Metrics are off: set METRICS_TOKEN to serve them.", request=request
        )
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), token.encode()):
        response = error_response(
            401,
            "not_authenticated",
            "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.",
            request=request,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


class MetricsDocumented(APIView):
    """`GET /metrics` as the OpenAPI document describes it (intent_project/urls_docs.py); the
    route itself is metrics_view. Its token is not an API token, so it declares no API security."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="getMetrics",
        tags=["operations"],
        description="The Prometheus text exposition (format 0.0.4) of the platform's metrics, for a "
        "scraper holding METRICS_TOKEN: send `Authorization: Bearer <METRICS_TOKEN>`. 404 while "
        "METRICS_TOKEN is unset.",
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Prometheus text."),
            **errors((401, "No or a wrong metrics token."), (404, "Metrics are off (METRICS_TOKEN unset).")),
        },
    )
    def get(self, request: Any) -> HttpResponse:
        return metrics_view(request._request)
