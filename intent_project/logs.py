"""One log configuration for the web, worker and beat processes (structlog over stdlib logging).

Every `logging.getLogger(__name__)` call in the project, Django's, Celery's and gunicorn's
goes through the same handler and renderer: JSON lines (`LOG_FORMAT=json`, the default
outside DEBUG) for a log shipper, or readable colored lines (`LOG_FORMAT=console`, the
default under DEBUG and `make run`). A line carries what its context knows: `request_id`,
`tenant` and `user` for a request; `task`, `command_id`, `command_type`, `correlation_id`,
`causation_id`, `projection`, `position` in a worker. Context is bound with `bind()` (or
`structlog.contextvars.bound_contextvars`) and lives in contextvars, so it follows a request
through the ASGI front door's threads and never leaks between requests or tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

# Order matters: context first, so a key passed to the call itself wins over a bound one.
_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

FORMATS = ("json", "console")


def logging_config(fmt: str, level: str, *, colors: bool) -> dict[str, Any]:
    """The `LOGGING` dict for Django (and, through it, Celery and gunicorn)."""
    if fmt == "json":
        final: list[Any] = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=colors)]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": _SHARED_PROCESSORS,
                "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # axes logs every login at INFO; its warnings (lockouts) still show.
            "axes": {"level": "WARNING"},
            # gunicorn's own loggers do not propagate: give them the same handler.
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }


def configure_structlog() -> None:
    """structlog's own loggers (`get_logger`) render through the stdlib handler above."""
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextmanager
def bind(**values: Any) -> Iterator[None]:
    """Add `values` (None ones left out) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in values.items() if v is not None}):
        yield


def bind_user(username: str | None) -> None:
    """Known only once authentication ran (DRF authenticates inside the view)."""
    if username:
        structlog.contextvars.bind_contextvars(user=username)


class LogContextMiddleware:
    """Binds the request's id for every line logged while the request runs, then (once the
    middlewares after it resolved them) its tenant and session user. Right after
    RequestIdMiddleware; API token users are bound by the authentication class."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A thread serves many requests (runserver, gthread): start from nothing and end
        # with nothing, so no line of one request carries another's user.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=getattr(request, "request_id", None))
        try:
            return self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            structlog.contextvars.bind_contextvars(tenant=tenant.schema_name)
        user = getattr(request, "user", None)
        try:
            if user is not None and user.is_authenticated:  # loads the session's user
                bind_user(user.get_username())
        except DatabaseError:
            # The database went away before the view: the view meets it too and answers
            # the API's 503; logging must not turn it into Django's error page first.
            pass
