"""Projections evolve without downtime: golden rows, versioned rebuilds under traffic, cancel."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection, connections, transaction
from django.forms.models import model_to_dict
from django_tenants.utils import schema_context

from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged, MultiEventEmitted, TestExecuted
from events_app.store import PostgresEventStore
from projections_app import registry as projection_registry
from projections_app.models import ProjectionState, RebuildJob, RebuildStatus, SystemMetrics, SystemStatus
from projections_app.operations import verify
from projections_app.rebuild import rebuild, request_cancel
from projections_app.registry import get_projection
from projections_app.runner import run_all
from projections_app.schemas import scratch_schema_name

SYSTEM_A = uuid.UUID("0a000000-0000-4000-8000-00000000000a")
SYSTEM_B = uuid.UUID("0b000000-0000-4000-8000-00000000000b")
TEST_1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
TEST_2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _test(test_id, n, result="success", **params):
    return TestExecuted(
        test_id=test_id,
        test_name=f"t{n}",
        tester_id="7",
        result=result,
        executed_at=AT,
        number_executed_tests=n,
        parameters=params or None,
    )


# A frozen stream: (system, events appended in one transaction).
GOLDEN_STREAM = [
    (SYSTEM_A, [MessageLogged(text="boot")]),
    (SYSTEM_A, [_test(TEST_1, 1, suite="smoke")]),
    (SYSTEM_B, [MultiEventEmitted(index=0), MultiEventEmitted(index=1)]),
    (SYSTEM_A, [_test(TEST_2, 2, result="failure")]),
    (SYSTEM_B, [MessageLogged(text="hello"), MessageLogged(text="again")]),
]

# The exact rows the stream must produce (volatile ids and timestamps checked separately).
GOLDEN_STATUS = {
    SYSTEM_A: {
        "last_test_id": TEST_2,
        "last_test_name": "t2",
        "last_tester_id": "7",
        "last_result": "failure",
        "last_parameters": None,
        "last_executed_at": AT,
        "number_executed_tests": 2,
        "messages_logged": 1,
        "last_event_version": 3,
    },
    SYSTEM_B: {
        "last_test_id": None,
        "last_test_name": "",
        "last_tester_id": "",
        "last_result": "",
        "last_parameters": None,
        "last_executed_at": None,
        "number_executed_tests": 0,
        "messages_logged": 2,
        "last_event_version": 4,
    },
}
GOLDEN_METRICS = {"test_count": 2, "failed_test_count": 1, "message_count": 3}


def _append(tenant, stream):
    with schema_context(tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=0)
        for system_id, events in stream:
            with transaction.atomic():
                store.append(store.load(System, system_id), events, {})


def _assert_golden(tenant):
    with schema_context(tenant.schema_name):
        rows = {row.system_id: model_to_dict(row) for row in SystemStatus.objects.all()}
        assert set(rows) == set(GOLDEN_STATUS)
        for system_id, expected in GOLDEN_STATUS.items():
            assert {k: rows[system_id][k] for k in expected} == expected, system_id
        metrics = model_to_dict(SystemMetrics.objects.get(scope="tenant"))
        assert {k: metrics[k] for k in GOLDEN_METRICS} == GOLDEN_METRICS


def test_the_golden_stream_projects_to_the_golden_rows_incrementally(fresh_tenant):
    for step in GOLDEN_STREAM:
        _append(fresh_tenant, [step])
        with schema_context(fresh_tenant.schema_name):
            run_all()
    _assert_golden(fresh_tenant)


def test_the_golden_stream_projects_to_the_golden_rows_by_rebuild(fresh_tenant):
    _append(fresh_tenant, GOLDEN_STREAM)
    with schema_context(fresh_tenant.schema_name):
        for name in ("system_status", "system_metrics"):
            assert rebuild(name).status == RebuildStatus.SWAPPED
        assert all(v.ok for v in verify())
    _assert_golden(fresh_tenant)


def _bump_versions(monkeypatch):
    projections, read_models = projection_registry._load()
    bumped = tuple(dataclasses.replace(p, version=p.version + 1) for p in projections)
    monkeypatch.setattr(projection_registry, "_load", lambda: (bumped, read_models))
    return bumped


def test_a_version_bump_rebuilds_beside_live_traffic_and_reads_never_fail(fresh_tenant, monkeypatch):
    _append(fresh_tenant, GOLDEN_STREAM)
    with schema_context(fresh_tenant.schema_name):
        run_all()
    bumped = _bump_versions(monkeypatch)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def traffic():  # keeps appending and projecting on the live version
        try:
            while not stop.is_set():
                _append(fresh_tenant, [(uuid.uuid4(), [MessageLogged(text="live")])])
                with schema_context(fresh_tenant.schema_name):
                    run_all()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def reads():  # a reader that must never fail nor go back in time
        try:
            with schema_context(fresh_tenant.schema_name):
                while not stop.is_set():
                    seen.append(SystemMetrics.objects.get(scope="tenant").message_count)
                    SystemStatus.objects.count()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=traffic), threading.Thread(target=reads)]
    for t in threads:
        t.start()
    try:
        with schema_context(fresh_tenant.schema_name):
            for projection in bumped:
                assert rebuild(projection.name).status == RebuildStatus.SWAPPED
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert seen and seen == sorted(seen)
    with schema_context(fresh_tenant.schema_name):
        run_all()
        states = {s.name: s for s in ProjectionState.objects.all()}
        for projection in bumped:
            assert states[projection.name].version == projection.version
            assert states[projection.name].fingerprint == projection.fingerprint
        # Identical to a from-scratch replay of the whole log.
        assert all(v.differences == [] for v in verify())


def test_a_cancelled_rebuild_leaves_the_live_version_untouched(fresh_tenant, monkeypatch):
    _append(fresh_tenant, GOLDEN_STREAM)
    with schema_context(fresh_tenant.schema_name):
        run_all()
        before = [model_to_dict(r) for r in SystemStatus.objects.order_by("pk")]
        live_version = get_projection("system_status").version
        _bump_versions(monkeypatch)
        job = rebuild("system_status", batch_size=1, progress=lambda job: request_cancel("system_status"))
        assert job.status == RebuildStatus.CANCELLED
        assert [model_to_dict(r) for r in SystemStatus.objects.order_by("pk")] == before
        assert ProjectionState.objects.get(name="system_status").version == live_version
        assert RebuildJob.objects.get(pk=job.pk).finished_at is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            [scratch_schema_name(fresh_tenant.schema_name, "system_status")],
        )
        assert cursor.fetchone() is None


def test_two_rebuilds_of_one_projection_cannot_run_at_once(fresh_tenant):
    from projections_app.operations import OperationRefused

    with schema_context(fresh_tenant.schema_name):
        RebuildJob.objects.create(projection="system_status", version=1)
        with pytest.raises(OperationRefused):
            rebuild("system_status")
