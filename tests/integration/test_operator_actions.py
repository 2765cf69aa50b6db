"""Operators recover from poison events and failed commands without losing anything."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from commands_app import bus, processing
from commands_app.domain.errors import Forbidden, IntentError
from commands_app.models import CommandStatus
from commands_app.operations import Operator
from projections_app import operations
from projections_app.models import DeadLetter, ProjectionState, ProjectionStatus, SystemMetrics, SystemStatus
from projections_app.runner import run_all
from tests.integration.helpers import reload, submit

SHELL = Operator.shell()


@pytest.fixture
def poisoned(fresh_tenant, settings, monkeypatch):
    """A tenant whose system_metrics projection stalls on the message 'poison'."""
    settings.PROJECTION_MAX_FAILURES = 1
    from projections_app.projectors import system as projectors

    original = projectors.metrics_message_logged

    def fragile(rec, batch):
        if rec.event.text == "poison":
            raise ValueError("cannot digest poison")
        original(rec, batch)

    monkeypatch.setitem(projectors.PROJECTIONS[1].handlers, projectors.MessageLogged, fragile)
    ids = [submit(fresh_tenant, "logMessage", {"message": m}).id for m in ("before", "poison", "after")]
    with schema_context(fresh_tenant.schema_name):
        for command_id in ids:
            processing.process(command_id)
        run_all()
    return fresh_tenant, ids


def test_a_poison_event_stalls_only_its_projection_and_says_why(poisoned):
    tenant, ids = poisoned
    with schema_context(tenant.schema_name):
        state = ProjectionState.objects.get(name="system_metrics")
        assert state.status == ProjectionStatus.STALLED
        assert state.last_error["message"] == "ValueError: cannot digest poison"
        assert state.last_error["details"]["type"] == "messageLogged"
        # The other projection of the same tenant kept going.
        assert ProjectionState.objects.get(name="system_status").status == ProjectionStatus.RUNNING
        assert sum(SystemStatus.objects.values_list("messages_logged", flat=True)) == 3
    # Commands waiting for the stalled projection stay consumed; none claims "processed".
    assert [reload(tenant, i).status for i in ids] == [CommandStatus.CONSUMED] * 3


def test_skipping_moves_the_event_to_a_dead_letter_and_the_projection_catches_up(poisoned):
    tenant, ids = poisoned
    with schema_context(tenant.schema_name):
        letter = operations.skip("system_metrics", by=Operator.shell("ops"))
        run_all()
        assert SystemMetrics.objects.get(scope="tenant").message_count == 2
        assert ProjectionState.objects.get(name="system_metrics").status == ProjectionStatus.RUNNING
        assert (letter.event_type, letter.skipped_by) == ("messageLogged", "ops")
        assert letter.error["message"] == "ValueError: cannot digest poison"
    assert [reload(tenant, i).status for i in ids] == [CommandStatus.PROCESSED] * 3


def test_a_dead_letter_can_be_replayed_once_the_handler_is_fixed(poisoned, monkeypatch):
    tenant, _ = poisoned
    from projections_app.projectors import system as projectors

    with schema_context(tenant.schema_name):
        letter = operations.skip("system_metrics", by=SHELL)
        run_all()
        monkeypatch.setitem(
            projectors.PROJECTIONS[1].handlers, projectors.MessageLogged, projectors.metrics_message_logged
        )
        operations.replay_dead_letter(letter.pk, by=SHELL)
        assert DeadLetter.objects.get(pk=letter.pk).replayed_at is not None
        with pytest.raises(operations.OperationRefused):
            operations.replay_dead_letter(letter.pk, by=SHELL)


def test_resuming_retries_the_failing_event(poisoned, monkeypatch):
    tenant, ids = poisoned
    from projections_app.projectors import system as projectors

    monkeypatch.setitem(
        projectors.PROJECTIONS[1].handlers, projectors.MessageLogged, projectors.metrics_message_logged
    )
    with schema_context(tenant.schema_name):
        operations.resume("system_metrics", by=SHELL)
        run_all()
        assert SystemMetrics.objects.get(scope="tenant").message_count == 3
        assert not DeadLetter.objects.exists()
    assert [reload(tenant, i).status for i in ids] == [CommandStatus.PROCESSED] * 3


def test_skipping_a_healthy_projection_is_refused(fresh_tenant):
    with schema_context(fresh_tenant.schema_name), pytest.raises(operations.OperationRefused):
        operations.skip("system_status", by=SHELL)


def test_a_failed_command_can_be_retried_and_keeps_its_history(fresh_tenant, settings):
    settings.COMMAND_MAX_RETRIES = 0
    system_id = uuid.uuid4()
    cmd = submit(
        fresh_tenant,
        "executeRetryableTest",
        {"testId": str(uuid.uuid4()), "testName": "r", "systemId": str(system_id)},
    )
    with schema_context(fresh_tenant.schema_name):
        assert processing.process(cmd.id) == "failed"
        with pytest.raises(Forbidden):
            bus.retry(cmd.id, role="tester")  # testers may not send executeRetryableTest
        odd = submit(fresh_tenant, "logMessage", {"message": "odd", "systemId": str(system_id)})
        processing.process(odd.id)
        retried = bus.retry(cmd.id, role="developer", operator="dave")
        assert retried.status == CommandStatus.PENDING and retried.error is None
        assert retried.metadata["previous_errors"][0]["error"]["code"] == "system_version_even"
        assert processing.process(cmd.id) == "consumed"
        with pytest.raises(IntentError) as err:
            bus.retry(cmd.id, role="developer")
        assert err.value.code == "not_retryable"


def test_verify_projections_finds_a_tampered_read_model(fresh_tenant, capsys):
    cmd = submit(fresh_tenant, "logMessage", {"message": "m"})
    with schema_context(fresh_tenant.schema_name):
        processing.process(cmd.id)
        run_all()
    call_command("verify_projections", "--tenant", fresh_tenant.slug)
    assert "DIFF" not in capsys.readouterr().out
    with schema_context(fresh_tenant.schema_name):
        SystemMetrics.objects.filter(scope="tenant").update(message_count=99)
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_projections", "--tenant", fresh_tenant.slug)
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "DIFF" in out and "system_metrics" in out
    with schema_context(fresh_tenant.schema_name):
        assert SystemMetrics.objects.get(scope="tenant").message_count == 99  # verifying changed nothing
