"""A command becoming final, or a projection moving on, notifies the API requests waiting
for it, when the change commits."""

from __future__ import annotations

from django_tenants.utils import schema_context

from commands_app import processing
from intent_project import notifications
from projections_app.runner import run_all
from tests.conftest import wait_until
from tests.integration.helpers import submit, test_payload


def test_final_commands_are_announced_to_the_listener_at_commit(fresh_tenant, monkeypatch):
    heard: list[str] = []
    wake = notifications._wake
    monkeypatch.setattr(notifications, "_wake", lambda key: (heard.append(key), wake(key)))
    notifications._ensure_listener()
    wait_until(notifications._listening.is_set)

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


def test_appends_and_consumed_commands_are_announced_for_live_streams_in_a_cloned_tenant(
    fresh_tenant, monkeypatch
):
    # fresh_tenant is cloned from the template schema: the append trigger came with it.
    heard: list[str] = []
    wake = notifications._wake
    monkeypatch.setattr(notifications, "_wake", lambda key: (heard.append(key), wake(key)))
    notifications._ensure_listener()
    wait_until(notifications._listening.is_set)

    schema = fresh_tenant.schema_name
    command = submit(fresh_tenant, "executeTest", test_payload())
    assert f"{schema}:events" not in heard  # storing a command appends nothing
    with schema_context(schema):
        assert processing.process(command.id) == "consumed"

    wait_until(lambda: {f"{schema}:events", f"{schema}:consumed:{command.id}"} <= set(heard))
    assert heard.count(f"{schema}:events") == 1  # one per appending transaction, however many events
