"""Traces are off unless OTEL_* asks for them; stored contexts continue one trace."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from intent_project import tracing


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter, instrument=False)
    yield exporter
    tracing.disable()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_it_traces_only_when_the_environment_asks(environ, expected):
    assert tracing.wanted(environ) is expected


def test_when_off_it_stores_no_context_and_opens_no_span():
    assert not tracing.enabled()
    assert tracing.carrier() == {}
    with tracing.span(
        "command transferMoney", parent={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    ) as current:
        assert current is None


def test_a_stored_context_continues_the_trace_in_another_hop(spans):
    with tracing.span("http POST", attributes={"intent.correlation_id": "c-1"}):
        stored = tracing.carrier()
    assert stored["traceparent"].startswith("00-")

    # Later, elsewhere (a worker): nothing is current, the stored context is the parent.
    with tracing.span("command transferMoney", parent=stored, attributes={"intent.command_id": None}):
        with tracing.span("append"):
            pass

    by_name = {span.name: span for span in spans.get_finished_spans()}
    root, command, append = by_name["http POST"], by_name["command transferMoney"], by_name["append"]
    assert command.context.trace_id == root.context.trace_id == append.context.trace_id
    assert command.parent.span_id == root.context.span_id
    assert append.parent.span_id == command.context.span_id
    assert root.attributes["intent.correlation_id"] == "c-1"
    assert "intent.command_id" not in command.attributes  # None values are left out


def test_a_batch_span_links_the_flows_of_its_events(spans):
    stored = []
    for flow in ("a", "b"):
        with tracing.span(f"command {flow}"):
            stored.append(tracing.carrier())

    with tracing.span("projection account_balances batch", links=[*stored, {}]):
        pass

    batch = next(span for span in spans.get_finished_spans() if span.name.startswith("projection"))
    commands = {span.name: span for span in spans.get_finished_spans() if span.name.startswith("command")}
    assert {link.context.trace_id for link in batch.links} == {
        commands["command a"].context.trace_id,
        commands["command b"].context.trace_id,
    }
