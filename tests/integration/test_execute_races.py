"""`execute`, the library path (no Celery), settles a lost race as the worker's batches do:
the command is decided again on the events that beat it, inside the same transaction,
under the tenant's append lock, instead of failing back to the caller."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from commands_app.domain.messages import CommandContext
from commands_app.domain.store import execute
from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import ExecuteTest, TestExecuted
from events_app.store import PostgresEventStore


def _ctx(tenant) -> CommandContext:
    from django.utils import timezone

    command_id = uuid.uuid4()
    return CommandContext(
        command_id=command_id,
        tenant=tenant.slug,
        user_id="42",
        role="tester",
        correlation_id=command_id,
        causation_id=None,
        now=timezone.now(),
    )


def _run_test(tenant, system_id) -> None:
    """One executeTest on its own connection, committed (another process's command)."""
    try:
        with schema_context(tenant.schema_name), transaction.atomic():
            store = PostgresEventStore(get_registry(), snapshot_every=0)
            execute(
                store,
                get_registry(),
                ExecuteTest(test_id=uuid.uuid4(), test_name="winner", system_id=system_id),
                _ctx(tenant),
            )
    finally:
        connection.close()


class RacedStore(PostgresEventStore):
    """Lets another connection append to the stream between this store's load and append."""

    def __init__(self, tenant) -> None:
        super().__init__(get_registry(), snapshot_every=0)
        self.tenant = tenant

    def load(self, aggregate_cls, aggregate_id):
        aggregate = super().load(aggregate_cls, aggregate_id)
        winner = threading.Thread(target=_run_test, args=(self.tenant, aggregate_id))
        winner.start()
        winner.join(timeout=30)
        return aggregate


def test_a_lost_race_is_decided_again_on_the_winners_events_without_failing(fresh_tenant):
    system_id = uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        command = ExecuteTest(test_id=uuid.uuid4(), test_name="raced", system_id=system_id)
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            (recorded,) = execute(RacedStore(fresh_tenant), get_registry(), command, _ctx(fresh_tenant))
        assert recorded.version == 2
        assert isinstance(recorded.event, TestExecuted)
        assert recorded.event.number_executed_tests == 2  # decided on the winner's event, not on v0
        stream = PostgresEventStore(get_registry()).read_stream("system", system_id)
        assert [(r.version, r.event.test_name) for r in stream] == [(1, "winner"), (2, "raced")]
        # The lost INSERT, one query for the events that beat it, the INSERT that wins.
        sent = [q["sql"] for q in queries.captured_queries]
        assert sum("INSERT INTO" in s for s in sent) == 2
        assert sum("WITH k(t, i)" in s for s in sent) == 1  # the load: snapshot and events at once
        assert sum("e.version > k.v" in s for s in sent) == 1  # the refresh: the winner's events only


def test_refresh_refuses_in_a_transaction_an_error_aborted(fresh_tenant):
    with schema_context(fresh_tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=0)
        with transaction.atomic():
            system = store.load(System, uuid.uuid4())
            with pytest.raises(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
            assert store.refresh(system) is False
            transaction.set_rollback(True)
