"""A command becoming final, a projection moving on, or events appended (by the store or
an import) notify the API requests and live streams waiting for it, when the change
commits. The code sends them (intent_project/announcements.py), not triggers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.bulk import import_events
from events_app.store import PostgresEventStore
from intent_project import announcements, notifications
from projections_app.runner import run_all
from tests.conftest import wait_until
from tests.integration.helpers import submit, test_payload
from tests.integration.test_import_events import _opened, _write


@pytest.fixture
def heard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every key this process's listener hears from now on."""
    keys: list[str] = []
    wake = notifications._wake
    monkeypatch.setattr(notifications, "_wake", lambda key: (keys.append(key), wake(key)))
    notifications._ensure_listener()
    wait_until(notifications._listening.is_set)
    yield keys


def test_final_commands_are_announced_to_the_listener_at_commit(fresh_tenant, heard):
    settled = submit(fresh_tenant, "executeTest", test_payload())  # consumed, then processed by settle
    failed = submit(fresh_tenant, "simulateFailure", {}, role="system")  # failed by the batch
    schema = fresh_tenant.schema_name
    with schema_context(schema):
        assert processing.process(settled.id) == "consumed"
        assert processing.process(failed.id) == "failed"
        assert f"{schema}:{settled.id}" not in heard
        run_all()

    wait_until(
        lambda: (
            {
                f"{schema}:{settled.id}",
                f"{schema}:{failed.id}",
                f"{schema}:projection:system_status",  # for readers waiting on ?min_position=
            }
            <= set(heard)
        )
    )


def test_appends_and_consumed_commands_are_announced_for_live_streams_in_a_cloned_tenant(fresh_tenant, heard):
    # fresh_tenant is cloned from the template schema, which has no append trigger any more.
    schema = fresh_tenant.schema_name
    command = submit(fresh_tenant, "executeTest", test_payload())
    assert f"{schema}:events" not in heard  # storing a command appends nothing
    with schema_context(schema):
        assert processing.process(command.id) == "consumed"

    wait_until(lambda: {f"{schema}:events", f"{schema}:consumed:{command.id}"} <= set(heard))
    assert heard.count(f"{schema}:events") == 1  # one per appending transaction, however many events


def test_events_imported_in_bulk_are_announced_as_appends_are(fresh_tenant, heard, tmp_path: Path):
    schema = fresh_tenant.schema_name
    path = _write(tmp_path / "opened.jsonl", [_opened(uuid.uuid4(), "Imported")])
    with schema_context(schema):
        assert import_events(path, schema).events == 1
    wait_until(lambda: f"{schema}:events" in heard)


def test_an_append_rolled_back_announces_nothing(fresh_tenant, heard):
    schema = fresh_tenant.schema_name
    system = System(id=uuid.uuid4())
    with schema_context(schema), transaction.atomic():
        PostgresEventStore(get_registry()).append(
            system, [MessageLogged(text="never", level="info", system_id=system.id)], {}
        )
        transaction.set_rollback(True)
    with transaction.atomic():  # a later notification: once it is heard, an earlier one would be
        announcements.announce(schema, ["sentinel"])
    wait_until(lambda: f"{schema}:sentinel" in heard)
    assert f"{schema}:events" not in heard
