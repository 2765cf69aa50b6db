"""What the hot paths cost in statements sent to PostgreSQL (each `cursor.execute` is one
round trip: a multi-statement string goes in one). Moving the notifications and the sweep
marks out of triggers into application code (docs/scaling.md, Citus) folded them into
statements these paths already made; these counts keep it so."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import Command
from commands_app.registry import get_registry
from commands_app.slices.banking.aggregate import Transfer
from commands_app.slices.banking.payloads import TransferRequested
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.store import PostgresEventStore
from projections_app.registry import get_consumer
from projections_app.runner import run_all, run_projection
from tests.integration.helpers import submit


def _statements(tenant: Any, action: Callable[[], Any]) -> list[str]:
    with schema_context(tenant.schema_name), CaptureQueriesContext(connection) as captured:
        action()
    connection.set_schema_to_public()
    return [q["sql"] for q in captured.captured_queries]


def _append(events: list[Any], aggregate: Any) -> None:
    with transaction.atomic():
        PostgresEventStore(get_registry()).append(aggregate, events, {})


def test_an_append_is_begin_insert_commit(fresh_tenant):
    system = System(id=uuid.uuid4())
    sent = _statements(
        fresh_tenant,
        lambda: _append([MessageLogged(text="one", level="info", system_id=system.id)], system),
    )
    assert len(sent) == 3, sent
    assert "tenants_sweepmark" in sent[1] and "pg_notify" in sent[1]  # with the INSERT


def test_storing_a_command_is_one_insert(fresh_tenant):
    sent = _statements(fresh_tenant, lambda: submit(fresh_tenant, "logMessage", {"message": "counted"}))
    assert len(sent) == 1, sent
    assert "tenants_sweepmark" in sent[0]


def test_a_command_stored_in_raw_sql_reads_as_the_orm_would_have_written_it(fresh_tenant):
    command = submit(fresh_tenant, "logMessage", {"message": "nulls"})
    with schema_context(fresh_tenant.schema_name):
        stored = Command.objects.filter(pk=command.id, result__isnull=True, error__isnull=True)
        assert stored.exclude(created_at=None).exclude(updated_at=None).exists()


def test_handling_a_command_costs_what_it_did(fresh_tenant):
    command = submit(fresh_tenant, "logMessage", {"message": "counted"})
    sent = _statements(fresh_tenant, lambda: processing.process(command.id))
    # 10 before the aggregate load read the snapshot and the events after it in one query.
    assert len(sent) == 9, sent


def test_catching_up_after_a_command_costs_what_it_did(fresh_tenant):
    command = submit(fresh_tenant, "logMessage", {"message": "counted"})
    with schema_context(fresh_tenant.schema_name):
        processing.process(command.id)
        run_all()
    command = submit(fresh_tenant, "logMessage", {"message": "counted"})
    with schema_context(fresh_tenant.schema_name):
        processing.process(command.id)
    sent = _statements(fresh_tenant, run_all)
    # 30 before issue 18, minus six: one read of the log's last stretch per group of
    # consumers (projections, sagas) instead of an EXISTS query per consumer behind the
    # head (eight here).
    assert len(sent) == 24, sent


def test_a_saga_step_costs_what_it_did(fresh_tenant):
    saga = get_consumer("transfer_saga")
    assert saga is not None
    with schema_context(fresh_tenant.schema_name):
        run_projection(saga)  # its checkpoint exists and is at the head
    connection.set_schema_to_public()
    transfer = Transfer(id=uuid.uuid4())
    requested = TransferRequested(from_account_id=uuid.uuid4(), to_account_id=uuid.uuid4(), amount=5)
    with schema_context(fresh_tenant.schema_name):
        _append([requested], transfer)
    sent = _statements(fresh_tenant, lambda: run_projection(saga))
    assert len(sent) == 10, sent
    issued = [sql for sql in sent if "INSERT INTO" in sql and "commands_app_command" in sql]
    assert len(issued) == 1 and "tenants_sweepmark" in issued[0]  # the saga's commands, marked
