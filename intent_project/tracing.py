"""OpenTelemetry traces, configured by the standard `OTEL_*` variables and off by default.

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an
OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
and `OTEL_SDK_DISABLED` is not `true`. Everything else is the SDK's own reading of the
environment: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
the exporter's endpoint, headers and timeout, the batch processor's `OTEL_BSP_*`.

When it is off, `span()` is a `nullcontext` and `carrier()` an empty dict: no tracer, no
context objects, nothing per command.

One trace per flow. The HTTP request is a span (the official Django instrumentation), and
so are Celery tasks and psycopg queries. The asynchronous hops are joined through the
database rows, not through broker messages (a drain handles many commands of many flows,
and a projection batch many events): the command bus stores the W3C trace context
(`carrier()`) in the command's metadata; the worker opens the command's span as a child
of it; the command's events store the context of that span; a saga reacting to an event
continues the event's trace and stores it in the commands it issues. Spans carry the
flow's `intent.correlation_id`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

log = logging.getLogger(__name__)

_OFF = ("", "none")
_enabled = False
_tracer: trace.Tracer | None = None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter not in _OFF
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def enabled() -> bool:
    return _enabled


def configure(*, exporter: Any = None, instrument: bool = True) -> bool:
    """Install the tracer provider and the official instrumentations, once per process.

    Called from the project's AppConfig.ready(), so the web tier, the workers, beat and
    management commands are all covered, before Django builds its middleware chain (the
    Django instrumentation inserts its middleware into settings.MIDDLEWARE). `exporter`
    replaces the environment's exporter (tests pass an in-memory one). The batch processor
    restarts its export thread in forked children (gunicorn, Celery's prefork pool).
    """
    global _enabled, _tracer
    if _enabled:
        return True
    if exporter is None and not wanted():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "intent"})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter_from_environment()))
        # The instrumentations use the global provider; it can be set once per process.
        trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("intent")
    _enabled = True
    if instrument:
        _instrument()
    log.info("tracing on", extra={"exporter": type(exporter).__name__ if exporter else "environment"})
    return True


def disable() -> None:
    """Turn the project's own spans off again (tests that enabled an in-memory exporter)."""
    global _enabled, _tracer
    _enabled, _tracer = False, None


def _exporter_from_environment() -> Any:
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _instrument() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    # Health and metrics probes every few seconds would bury the flows.
    os.environ.setdefault("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "health/,ready/,metrics")
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(skip_dep_check=True)


def annotate(**attributes: Any) -> None:
    """Set `intent.<name>` attributes on the current span (None values are left out)."""
    if not _enabled:
        return
    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(f"intent.{key}", _attribute(value))


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`), to store
    with a command or an event; empty when tracing is off or no span is current."""
    if not _enabled:
        return {}
    headers: dict[str, str] = {}
    inject(headers)
    return headers


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    links: Sequence[Mapping[str, str]] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span | None]:
    """A span named `name`, the child of the stored context `parent` when one is given
    (otherwise of the current span), linked to the stored contexts in `links`."""
    if not _enabled or _tracer is None:
        yield None
        return
    ctx = extract(dict(parent)) if parent else otel_context.get_current()
    span_links = []
    for stored in links:
        linked = trace.get_current_span(extract(dict(stored))).get_span_context()
        if linked.is_valid:
            span_links.append(trace.Link(linked))
    clean = {key: _attribute(value) for key, value in (attributes or {}).items() if value is not None}
    with _tracer.start_as_current_span(name, context=ctx, links=span_links, attributes=clean) as current:
        yield current


def _attribute(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)
