"""`GET /metrics`: the Prometheus text of intent_project/metrics.py, for whoever holds
METRICS_TOKEN (`Authorization: Bearer <token>`, as a Prometheus scrape config sends it)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from intent_project.api.errors import error_response
from intent_project.metrics import exposition


def metrics_view(request: HttpRequest) -> HttpResponse:
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
