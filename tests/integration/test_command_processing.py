"""Commands are executed at most once and end in a final status that says why."""

from __future__ import annotations

import threading
import uuid

from django.db import connections
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import CommandStatus
from events_app.models import Event
from projections_app.runner import run_all
from tests.integration.helpers import reload, submit, test_payload


def _process(tenant, command_id):
    with schema_context(tenant.schema_name):
        outcome = processing.process(command_id)
    return f"retry-in-{outcome.delay}" if isinstance(outcome, processing.Postponed) else outcome


def _events_of(tenant, command_id):
    with schema_context(tenant.schema_name):
        return list(Event.objects.filter(command_id=command_id).order_by("position"))


def test_a_command_is_consumed_then_processed_once_projections_pass_it(fresh_tenant):
    cmd = submit(fresh_tenant, "executeTest", test_payload())
    assert cmd.status == CommandStatus.PENDING
    assert _process(fresh_tenant, cmd.id) == "consumed"
    consumed = reload(fresh_tenant, cmd.id)
    assert consumed.awaiting_projections == ["system_metrics", "system_status"]
    assert consumed.result["events"][0]["position"] == consumed.last_position
    with schema_context(fresh_tenant.schema_name):
        run_all()
    assert reload(fresh_tenant, cmd.id).status == CommandStatus.PROCESSED


def test_a_result_names_its_events_aggregate_as_the_command_and_the_events_api_do(fresh_tenant):
    cmd = submit(fresh_tenant, "logMessage", {"message": "named"})
    _process(fresh_tenant, cmd.id)
    done = reload(fresh_tenant, cmd.id)
    (event,) = _events_of(fresh_tenant, cmd.id)
    assert done.result == {
        "events": [
            {
                "id": str(event.id),
                "type": "messageLogged",
                "position": event.position,
                "aggregate_type": done.aggregate_type,
                "aggregate_id": str(done.aggregate_id),
                "version": 1,
            }
        ],
        "aggregate_version": 1,
    }
    assert (event.stream_type, event.stream_id) == (done.aggregate_type, done.aggregate_id)


def test_a_second_delivery_does_nothing(fresh_tenant):
    cmd = submit(fresh_tenant, "emitMultipleEvents", {"count": 3})
    assert _process(fresh_tenant, cmd.id) == "consumed"
    assert _process(fresh_tenant, cmd.id) == "already-consumed"
    assert len(_events_of(fresh_tenant, cmd.id)) == 3
    assert reload(fresh_tenant, cmd.id).attempts == 1


def test_concurrent_deliveries_of_one_command_execute_it_once(fresh_tenant):
    cmd = submit(fresh_tenant, "emitMultipleEvents", {"count": 5})
    barrier = threading.Barrier(4)
    outcomes = []

    def deliver():
        try:
            barrier.wait()
            outcomes.append(_process(fresh_tenant, cmd.id))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("consumed") == 1, outcomes
    assert len(_events_of(fresh_tenant, cmd.id)) == 5
    assert reload(fresh_tenant, cmd.id).attempts == 1


def test_posting_the_same_id_twice_stores_one_command(fresh_tenant):
    command_id = uuid.uuid4()
    first = submit(fresh_tenant, "logMessage", {"message": "once"}, command_id=command_id)
    second = submit(fresh_tenant, "logMessage", {"message": "once"}, command_id=command_id)
    assert first.id == second.id == command_id
    _process(fresh_tenant, command_id)
    _process(fresh_tenant, command_id)
    assert len(_events_of(fresh_tenant, command_id)) == 1


def test_a_domain_error_fails_the_command_at_once_with_its_code(fresh_tenant):
    cmd = submit(fresh_tenant, "simulateFailure", {}, role="system")
    assert _process(fresh_tenant, cmd.id) == "failed"
    failed = reload(fresh_tenant, cmd.id)
    assert failed.status == CommandStatus.FAILED
    assert failed.error["code"] == "simulated_failure"
    assert failed.attempts == 1
    assert _events_of(fresh_tenant, cmd.id) == []
    assert _process(fresh_tenant, cmd.id) == "already-failed"


def test_a_retryable_error_retries_with_backoff_then_fails_visibly(fresh_tenant, settings):
    settings.COMMAND_MAX_RETRIES = 2
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 0
    cmd = submit(fresh_tenant, "executeRetryableTest", test_payload(system_id=uuid.uuid4()), role="system")
    assert _process(fresh_tenant, cmd.id).startswith("retry-in-")
    waiting = reload(fresh_tenant, cmd.id)
    assert waiting.status == CommandStatus.PENDING
    assert waiting.error["code"] == "system_version_even" and waiting.error["retrying"] is True
    assert waiting.not_before is not None
    assert _process(fresh_tenant, cmd.id).startswith("retry-in-")
    assert _process(fresh_tenant, cmd.id) == "failed"
    failed = reload(fresh_tenant, cmd.id)
    assert failed.status == CommandStatus.FAILED
    assert failed.error["code"] == "system_version_even"
    assert failed.error["details"]["retries_exhausted"] is True
    assert failed.attempts == 3


def test_a_retryable_command_succeeds_once_the_rule_allows_it(fresh_tenant, settings):
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 0
    system_id = uuid.uuid4()
    cmd = submit(fresh_tenant, "executeRetryableTest", test_payload(system_id=system_id), role="system")
    assert _process(fresh_tenant, cmd.id).startswith("retry-in-")
    other = submit(fresh_tenant, "logMessage", {"message": "odd", "systemId": str(system_id)})
    _process(fresh_tenant, other.id)
    assert _process(fresh_tenant, cmd.id) == "consumed"
    done = reload(fresh_tenant, cmd.id)
    assert done.error is None
    assert done.result["events"][0]["version"] == 2


def test_a_bug_in_a_handler_retries_then_fails_visibly_instead_of_staying_pending(
    fresh_tenant, settings, monkeypatch
):
    from commands_app.registry import get_registry
    from commands_app.slices.system.payloads import LogMessage
    from commands_app.tasks import process_command

    settings.COMMAND_MAX_RETRIES = 1
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 0

    def broken(system, cmd, ctx):
        raise KeyError("oops")

    monkeypatch.setitem(get_registry().handlers, LogMessage, broken)
    cmd = submit(fresh_tenant, "logMessage", {"message": "bug"})
    assert process_command(fresh_tenant.schema_name, str(cmd.id)) == "retry-scheduled"
    retrying = reload(fresh_tenant, cmd.id)
    assert retrying.status == CommandStatus.PENDING
    assert retrying.error["code"] == "unexpected_error" and retrying.error["retrying"] is True
    process_command(fresh_tenant.schema_name, str(cmd.id))
    failed = reload(fresh_tenant, cmd.id)
    assert failed.status == CommandStatus.FAILED
    assert failed.error["code"] == "unexpected_error"
    assert "KeyError" in failed.error["message"]
    assert _events_of(fresh_tenant, cmd.id) == []
