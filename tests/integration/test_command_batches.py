"""A worker handles many due commands of a tenant in one transaction; each still gets
exactly its own outcome, and one bad command never takes the others down."""

from __future__ import annotations

import uuid

from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import Command, CommandStatus
from commands_app.registry import get_registry
from commands_app.slices.system.payloads import LogMessage
from events_app.models import Event
from tests.integration.helpers import reload, submit, test_payload


def _batch(tenant, first_id, limit=50):
    with schema_context(tenant.schema_name):
        return processing.process_batch(first_id, limit=limit)


def test_one_batch_decides_each_command_on_the_state_left_by_the_one_before(fresh_tenant):
    system_id = uuid.uuid4()
    ids = [submit(fresh_tenant, "executeTest", test_payload(system_id=system_id)).id for _ in range(30)]
    failing = submit(fresh_tenant, "simulateFailure", {"systemId": str(system_id)}, role="system").id
    ids += [submit(fresh_tenant, "executeTest", test_payload(system_id=system_id)).id for _ in range(5)]

    outcomes = _batch(fresh_tenant, ids[0])

    assert len(outcomes) == 36
    assert outcomes[failing] == "failed"
    assert all(outcomes[i] == "consumed" for i in ids)
    with schema_context(fresh_tenant.schema_name):
        events = list(Event.objects.filter(stream_id=system_id).order_by("version"))
        assert [e.version for e in events] == list(range(1, 36))
        assert [e.payload["numberExecutedTests"] for e in events] == list(range(1, 36))
        # In submission order, and each command's events point back at it.
        assert [e.command_id for e in events] == ids
        assert Command.objects.get(pk=failing).error["code"] == "simulated_failure"
    for command_id, event in zip(ids, events, strict=True):
        row = reload(fresh_tenant, command_id)
        assert row.result["events"][0]["position"] == event.position == row.last_position
        assert row.attempts == 1


def test_a_bug_in_one_handler_rolls_back_only_that_command(fresh_tenant, monkeypatch, settings):
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 0
    registry = get_registry()
    original = registry.handlers[LogMessage]

    def sometimes_broken(system, cmd, ctx):
        if cmd.message == "bug":
            raise KeyError("oops")
        return original(system, cmd, ctx)

    monkeypatch.setitem(registry.handlers, LogMessage, sometimes_broken)
    good = [submit(fresh_tenant, "logMessage", {"message": f"ok {i}"}).id for i in range(3)]
    bad = submit(fresh_tenant, "logMessage", {"message": "bug"}).id
    good += [submit(fresh_tenant, "logMessage", {"message": f"ok {i}"}).id for i in range(3, 6)]

    outcomes = _batch(fresh_tenant, good[0])

    assert all(outcomes[i] in {"consumed", "processed"} for i in good)
    assert isinstance(outcomes[bad], processing.Postponed)
    retrying = reload(fresh_tenant, bad)
    assert (retrying.status, retrying.error["code"], retrying.attempts) == (
        CommandStatus.PENDING,
        "unexpected_error",
        1,
    )
    with schema_context(fresh_tenant.schema_name):
        assert not Event.objects.filter(command_id=bad).exists()
        assert Event.objects.filter(command_id__in=good).count() == 6


def test_commands_not_yet_due_and_other_final_commands_stay_out_of_a_batch(fresh_tenant):
    first = submit(fresh_tenant, "logMessage", {"message": "now"}).id
    done = submit(fresh_tenant, "logMessage", {"message": "done"}).id
    _batch(fresh_tenant, done, limit=1)
    with schema_context(fresh_tenant.schema_name):
        later = submit(fresh_tenant, "logMessage", {"message": "later"}).id
        Command.objects.filter(pk=later).update(not_before="2999-01-01T00:00:00Z")

    outcomes = _batch(fresh_tenant, first)

    assert set(outcomes) == {first}
    assert reload(fresh_tenant, later).status == CommandStatus.PENDING
