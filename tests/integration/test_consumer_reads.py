"""A consumer's `reads` (the runner's Python look at a short stretch of the log) says of
every stored event what its `event_filter` query says: the two may never drift apart, or
the runner would fast-forward a consumer past an event it should have applied."""

from __future__ import annotations

import uuid

from django_tenants.utils import schema_context

from commands_app.domain.saga import Saga
from commands_app.models import Command, CommandStatus
from commands_app.processing import process
from commands_app.slices.system.payloads import LogMessage
from events_app.models import Event
from projections_app import runner
from projections_app.registry import get_consumers
from projections_app.sagas import SagaConsumer
from tests.integration.helpers import submit


def _settle(tenant) -> None:
    """Process every pending command and run every consumer, until the sagas send nothing."""
    with schema_context(tenant.schema_name):
        for _ in range(6):
            for command_id in Command.objects.filter(status=CommandStatus.PENDING).values_list(
                "id", flat=True
            ):
                process(command_id)
            runner.run_all()


def _banking_and_system_traffic(tenant) -> None:
    account, other = str(uuid.uuid4()), str(uuid.uuid4())
    for kind, payload, role in [
        ("openAccount", {"accountId": account, "owner": "Ada", "currency": "EUR"}, "banker"),
        ("openAccount", {"accountId": other, "owner": "Bob", "currency": "EUR"}, "banker"),
        ("depositMoney", {"accountId": account, "amount": 500}, "banker"),
        (
            "transferMoney",
            {"transferId": str(uuid.uuid4()), "fromAccountId": account, "toAccountId": other, "amount": 100},
            "banker",
        ),
        ("logMessage", {"message": "hello"}, "developer"),
        ("emitMultipleEvents", {"count": 2}, "tester"),
    ]:
        submit(tenant, kind, payload, role=role)
    _settle(tenant)


# A saga reacting to a command type only (the registered ones also react to its events, so
# they alone would not show a command-reaction check gone wrong).
COMMAND_ONLY = SagaConsumer.of(Saga(name="probe", on_commands={LogMessage: lambda handled, state: []}))


def test_reads_agrees_with_the_filter_on_every_event_of_the_log(fresh_tenant):
    _banking_and_system_traffic(fresh_tenant)
    with schema_context(fresh_tenant.schema_name):
        events = list(Event.objects.order_by("position").values_list("position", "type", "metadata"))
        assert len(events) > 5
        assert any(COMMAND_ONLY.reads(type_name, meta) for _, type_name, meta in events)
        for consumer in (*get_consumers(), COMMAND_ONLY):
            by_query = set(Event.objects.filter(consumer.event_filter()).values_list("position", flat=True))
            by_reads = {position for position, type_name, meta in events if consumer.reads(type_name, meta)}
            assert by_reads == by_query, consumer.name


def test_the_stretch_read_and_the_query_per_consumer_find_the_same_consumers(fresh_tenant, monkeypatch):
    _banking_and_system_traffic(fresh_tenant)
    with schema_context(fresh_tenant.schema_name):
        head = runner.head_position()
        for start in range(0, head):
            behind = {consumer: start for consumer in get_consumers()}
            read_once = runner._with_events(behind, head)
            monkeypatch.setattr(runner, "_PEEK_POSITIONS", -1)  # a query per consumer
            queried = runner._with_events(behind, head)
            monkeypatch.undo()
            assert read_once == queried, start
