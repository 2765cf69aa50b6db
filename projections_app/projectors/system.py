"""The system slice's projectors.

Handlers change rows through the batch (see projectors.base.Batch). Each is idempotent on
its own as well: the checkpoint already prevents re-application, and the per-row guards
(stream version, log position) make a replayed event a no-op even if a checkpoint is
rewound by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import Model

from commands_app.domain.messages import Recorded
from commands_app.slices.system.payloads import (
    MessageLogged,
    MultiEventEmitted,
    RetryableTestExecuted,
    TestExecuted,
)
from projections_app.models.system import SystemMetrics, SystemStatus
from projections_app.projectors.base import Batch, Projection, ReadModel

TENANT_SCOPE = "tenant"


# -- system_status: one row per system aggregate --------------------------------------------
def _status_row(rec: Recorded[Any], batch: Batch) -> SystemStatus | None:
    """The row to change, or None when this event was already applied."""
    row = batch.get(SystemStatus, rec.stream_id)
    if row is None:
        return SystemStatus(
            system_id=rec.stream_id, last_event_id=rec.id, last_event_version=0, updated_at=rec.recorded_at
        )
    if rec.version <= row.last_event_version:
        return None
    return row


def _touch(row: SystemStatus, rec: Recorded[Any], batch: Batch) -> None:
    row.last_event_id = rec.id
    row.last_event_version = rec.version
    row.updated_at = rec.recorded_at
    batch.put(row)


def status_test_executed(rec: Recorded[TestExecuted], batch: Batch) -> None:
    row = _status_row(rec, batch)
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
    _touch(row, rec, batch)


def status_retryable_test_executed(rec: Recorded[RetryableTestExecuted], batch: Batch) -> None:
    row = _status_row(rec, batch)
    if row is None:
        return
    event = rec.event
    row.last_test_id = event.test_id
    row.last_test_name = event.test_name
    row.last_result = event.result
    row.last_parameters = event.parameters
    row.last_executed_at = event.executed_at
    _touch(row, rec, batch)


def status_message_logged(rec: Recorded[MessageLogged], batch: Batch) -> None:
    row = _status_row(rec, batch)
    if row is None:
        return
    row.messages_logged += 1
    row.last_message = rec.event.text
    row.last_message_level = rec.event.level
    _touch(row, rec, batch)


def status_event_emitted(rec: Recorded[MultiEventEmitted], batch: Batch) -> None:
    row = _status_row(rec, batch)
    if row is not None:
        _touch(row, rec, batch)


def status_keys(records: Sequence[Recorded[Any]]) -> Mapping[type[Model], Iterable[Any]]:
    return {SystemStatus: {rec.stream_id for rec in records}}


# -- system_metrics: tenant-wide counters ---------------------------------------------------
def _metrics_row(rec: Recorded[Any], batch: Batch) -> SystemMetrics | None:
    row = batch.get(SystemMetrics, TENANT_SCOPE) or SystemMetrics(
        scope=TENANT_SCOPE, updated_at=rec.recorded_at
    )
    return None if rec.position <= row.last_position else row


def _count(row: SystemMetrics, rec: Recorded[Any], batch: Batch) -> None:
    row.last_position = rec.position
    row.updated_at = rec.recorded_at
    batch.put(row)


def metrics_test_executed(rec: Recorded[TestExecuted], batch: Batch) -> None:
    row = _metrics_row(rec, batch)
    if row is None:
        return
    row.test_count += 1
    if rec.event.result == "failure":
        row.failed_test_count += 1
    _count(row, rec, batch)


def metrics_message_logged(rec: Recorded[MessageLogged], batch: Batch) -> None:
    row = _metrics_row(rec, batch)
    if row is None:
        return
    row.message_count += 1
    _count(row, rec, batch)


def metrics_keys(records: Sequence[Recorded[Any]]) -> Mapping[type[Model], Iterable[Any]]:
    return {SystemMetrics: [TENANT_SCOPE]}


PROJECTIONS = (
    Projection(
        name="system_status",
        version=2,
        read_models=(SystemStatus,),
        handlers={
            TestExecuted: status_test_executed,
            RetryableTestExecuted: status_retryable_test_executed,
            MessageLogged: status_message_logged,
            MultiEventEmitted: status_event_emitted,
        },
        keys=status_keys,
    ),
    Projection(
        name="system_metrics",
        version=1,
        read_models=(SystemMetrics,),
        handlers={
            TestExecuted: metrics_test_executed,
            MessageLogged: metrics_message_logged,
        },
        keys=metrics_keys,
    ),
)

READ_MODELS = (
    ReadModel(
        name="system_status",
        model=SystemStatus,
        projection="system_status",
        filter_fields=("last_result", "last_tester_id", "last_test_id"),
        ordering=("system_id",),
        # What tells systems apart at a glance; counters and the message are on the page.
        list_fields=(
            "system_id",
            "last_test_name",
            "last_result",
            "last_tester_id",
            "last_executed_at",
            "number_executed_tests",
        ),
    ),
    ReadModel(name="system_metrics", model=SystemMetrics, projection="system_metrics", ordering=("scope",)),
)
