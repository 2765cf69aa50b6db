"""One trace per flow: a banking transfer sent here and run by a real worker (exporting
with the real OTLP exporter, configured only by OTEL_* variables) is one connected trace
naming the transfer, its debit, its credit and its completion."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django_tenants.utils import schema_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commands_app.models import Command, CommandStatus
from intent_project import tracing
from tests.conftest import start_worker, wait_until
from tests.integration.otlp import Collector, collector

FLOW = ("transferMoney", "debitAccountForTransfer", "creditAccountForTransfer", "markTransferCompleted")


@pytest.fixture(scope="module")
def otlp() -> Iterator[Collector]:
    with collector() as running:
        yield running


@pytest.fixture(scope="module")
def traced_worker(world, isolated_redis, otlp, tmp_path_factory) -> Iterator[Any]:
    worker = start_worker(
        tmp_path_factory.mktemp("traced") / "worker.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_SERVICE_NAME="intent-worker",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    yield worker
    worker.stop()


@pytest.fixture
def here() -> Iterator[InMemorySpanExporter]:
    """This process (the API side) traces into memory."""
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter, instrument=False)
    yield exporter
    tracing.disable()


def _send(client: Any, type_name: str, payload: dict[str, Any]) -> str:
    response = client.post("/t/acme/api/commands/", {"type": type_name, "payload": payload}, format="json")
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def _final(world: Any, command_id: str) -> None:
    def done() -> bool:
        with schema_context(world.acme.schema_name):
            return Command.objects.filter(pk=command_id, status=CommandStatus.PROCESSED).exists()

    wait_until(done, timeout=30)


@pytest.mark.worker
def test_a_transfer_is_one_trace_from_the_request_to_its_completion(
    world, live_db, traced_worker, otlp, here
):
    bea = world["bea"].client()
    source, target = uuid.uuid4(), uuid.uuid4()
    for account in (source, target):
        _final(
            world, _send(bea, "openAccount", {"accountId": str(account), "owner": "Ann", "currency": "EUR"})
        )
    _final(world, _send(bea, "depositMoney", {"accountId": str(source), "amount": 500}))

    with tracing.span("client transfer") as root:
        transfer_id = _send(
            bea,
            "transferMoney",
            {
                "transferId": str(uuid.uuid4()),
                "fromAccountId": str(source),
                "toAccountId": str(target),
                "amount": 120,
            },
        )
    assert root is not None
    trace_id = format(root.get_span_context().trace_id, "032x")

    def whole_flow() -> list[Any] | None:
        spans = otlp.of_trace(trace_id)
        names = {span.name for span in spans}
        ids = {span.span_id for span in spans} | {
            format(s.context.span_id, "016x") for s in here.get_finished_spans()
        }
        # Spans are exported in batches: wait until every parent has arrived too.
        connected = {span.parent_id for span in spans} <= ids
        return spans if connected and all(f"command {name}" in names for name in FLOW) else None

    remote = wait_until(whole_flow, timeout=30)
    local = [
        span
        for span in here.get_finished_spans()
        if span.context.trace_id == root.get_span_context().trace_id
    ]

    # Connected: every span's parent is a span of this same trace, up to the client's root.
    ids = {span.span_id for span in remote} | {format(span.context.span_id, "016x") for span in local}
    assert {span.parent_id for span in remote} <= ids
    assert {span.name for span in local} == {"client transfer", "store transferMoney"}
    names = [span.name for span in remote]
    for name in FLOW:
        assert names.count(f"command {name}") == 1, names
    assert any(name.startswith("saga ") for name in names)
    assert {span.service for span in remote} == {"intent-worker"}

    commands = [span for span in remote if span.name.startswith("command ")]
    assert {span.attributes["intent.correlation_id"] for span in commands} == {transfer_id}
    debit = next(span for span in commands if span.name == "command debitAccountForTransfer")
    saga = next(span for span in remote if span.span_id == debit.parent_id)
    assert saga.name.startswith("saga "), "a saga's command continues the saga's reaction"


METRICS_TOKEN = "scrape-token-for-the-flow"


@pytest.mark.worker
def test_after_real_commands_the_scrape_counts_them(world, live_db, traced_worker, settings):
    from prometheus_client.parser import text_string_to_metric_families

    from tests.api.helpers import client_for

    settings.METRICS_TOKEN = METRICS_TOKEN
    bea = world["bea"].client()
    account = uuid.uuid4()
    _final(world, _send(bea, "openAccount", {"accountId": str(account), "owner": "Bo", "currency": "EUR"}))
    _final(world, _send(bea, "depositMoney", {"accountId": str(account), "amount": 7}))

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = client_for().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
        assert response.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    def counted() -> dict[Any, float] | None:
        figures = scrape()
        final = figures.get(
            ("intent_commands_final_total", (("status", "processed"), ("type", "depositMoney"))), 0
        )
        batches = figures.get(
            ("intent_projection_batch_seconds_count", (("projection", "account_balances"),)), 0
        )
        return figures if final >= 1 and batches >= 1 else None

    figures = wait_until(counted, timeout=20)
    assert figures[("intent_events_appended_total", (("type", "moneyDeposited"),))] >= 1
    assert figures[("intent_command_latency_seconds_count", (("stage", "processed"),))] >= 2
    assert figures[("intent_command_batch_seconds_count", ())] >= 2
    assert figures[("intent_projection_events_total", (("projection", "account_balances"),))] >= 2
