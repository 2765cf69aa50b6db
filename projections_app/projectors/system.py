"""The system slice's projectors. Each handler is idempotent on its own as well: the
checkpoint already prevents re-application, and the per-row version guard makes a replayed
event a no-op even if someone resets a checkpoint by hand."""

from __future__ import annotations

from commands_app.domain.messages import Recorded
from commands_app.slices.system.payloads import (
    MessageLogged,
    MultiEventEmitted,
    RetryableTestExecuted,
    TestExecuted,
)
from projections_app.models.system import SystemMetrics, SystemStatus
from projections_app.projectors.base import Projection, ReadModel


def _status_row(rec: Recorded) -> SystemStatus | None:
    """The row to update, or None when this event was already applied."""
    row = SystemStatus.objects.filter(system_id=rec.stream_id).first()
    if row is None:
        return SystemStatus(
            system_id=rec.stream_id,
            last_event_id=rec.id,
            last_event_version=0,
            updated_at=rec.recorded_at,
        )
    if rec.version <= row.last_event_version:
        return None
    return row


def _touch(row: SystemStatus, rec: Recorded) -> None:
    row.last_event_id = rec.id
    row.last_event_version = rec.version
    row.updated_at = rec.recorded_at
    row.save()


def status_test_executed(rec: Recorded[TestExecuted]) -> None:
    row = _status_row(rec)
    if row is None:
        return
    event = rec.event
    row.last_test_id = event.test_id
    row.last_test_name = event.test_name
    row.last_tester_id = event.tester_id
    row.last_result = event.result
    row.last_parameters = event.parameters
    row.last_executed_at = event.executed_at
    row.number_executed_tests = event.number_executed_tests
    _touch(row, rec)


def status_retryable_test_executed(rec: Recorded[RetryableTestExecuted]) -> None:
    row = _status_row(rec)
    if row is None:
        return
    event = rec.event
    row.last_test_id = event.test_id
    row.last_test_name = event.test_name
    row.last_result = event.result
    row.last_parameters = event.parameters
    row.last_executed_at = event.executed_at
    _touch(row, rec)


def status_message_logged(rec: Recorded[MessageLogged]) -> None:
    row = _status_row(rec)
    if row is None:
        return
    row.messages_logged += 1
    _touch(row, rec)


def status_event_emitted(rec: Recorded[MultiEventEmitted]) -> None:
    row = _status_row(rec)
    if row is not None:
        _touch(row, rec)


def _metrics_row(rec: Recorded) -> SystemMetrics | None:
    row = SystemMetrics.objects.filter(scope="tenant").first() or SystemMetrics(
        scope="tenant", updated_at=rec.recorded_at
    )
    return None if rec.position <= row.last_position else row


def metrics_test_executed(rec: Recorded[TestExecuted]) -> None:
    row = _metrics_row(rec)
    if row is None:
        return
    row.test_count += 1
    if rec.event.result == "failure":
        row.failed_test_count += 1
    row.last_position = rec.position
    row.updated_at = rec.recorded_at
    row.save()


def metrics_message_logged(rec: Recorded[MessageLogged]) -> None:
    row = _metrics_row(rec)
    if row is None:
        return
    row.message_count += 1
    row.last_position = rec.position
    row.updated_at = rec.recorded_at
    row.save()


PROJECTIONS = (
    Projection(
        name="system_status",
        version=1,
        read_models=(SystemStatus,),
        handlers={
            TestExecuted: status_test_executed,
            RetryableTestExecuted: status_retryable_test_executed,
            MessageLogged: status_message_logged,
            MultiEventEmitted: status_event_emitted,
        },
    ),
    Projection(
        name="system_metrics",
        version=1,
        read_models=(SystemMetrics,),
        handlers={
            TestExecuted: metrics_test_executed,
            MessageLogged: metrics_message_logged,
        },
    ),
)

READ_MODELS = (
    ReadModel(
        name="system_status",
        model=SystemStatus,
        projection="system_status",
        filter_fields=("last_result", "last_tester_id", "last_test_id"),
        ordering=("system_id",),
    ),
    ReadModel(name="system_metrics", model=SystemMetrics, projection="system_metrics", ordering=("scope",)),
)
