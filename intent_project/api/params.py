"""Query parameters several endpoints share."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request

from intent_project.api.errors import ApiError


def wait_seconds(request: Request, default: float = 0.0) -> float:
    """`?wait=<seconds>`: how long a read may be held, 0..COMMAND_WAIT_MAX_SECONDS."""
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= settings.COMMAND_WAIT_MAX_SECONDS:  # NaN fails this too
        raise ApiError(
            400,
            "validation_error",
            f"wait must be a number of seconds from 0 to {settings.COMMAND_WAIT_MAX_SECONDS}.",
            {"fields": {"wait": ["Out of range."]}},
        )
    return value
