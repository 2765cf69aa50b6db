"""Readers never skip an event that commits late, and tenants never wait for each other.

Positions come from a sequence, which hands them out before commit. Without the per-tenant
append lock, a writer that took position N and commits late would be overtaken by one
with N+1, a projection would advance past N+1, and event N would never be applied.
"""

from __future__ import annotations

import threading
import uuid

from django.db import connections, transaction
from django_tenants.utils import schema_context

from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.models import Event
from events_app.store import PostgresEventStore
from projections_app.models import ProjectionState, SystemMetrics, SystemStatus
from projections_app.runner import run_all

META = {"command_id": None, "correlation_id": None, "causation_id": None}
HOLD = 10.0  # generous upper bound for "the other side is blocked"; never a speed threshold


def _append_and_hold(tenant, appended: threading.Event, release: threading.Event, system_id=None):
    """Append one event, then keep the transaction open until `release` is set."""
    try:
        with schema_context(tenant.schema_name), transaction.atomic():
            store = PostgresEventStore(get_registry(), snapshot_every=0)
            store.append(store.load(System, system_id or uuid.uuid4()), [MessageLogged(text="late")], META)
            appended.set()
            release.wait(HOLD)
    finally:
        connections.close_all()


def _append(tenant, done: threading.Event):
    try:
        with schema_context(tenant.schema_name), transaction.atomic():
            store = PostgresEventStore(get_registry(), snapshot_every=0)
            store.append(store.load(System, uuid.uuid4()), [MessageLogged(text="early")], META)
        done.set()
    finally:
        connections.close_all()


def test_an_event_that_commits_late_is_not_skipped(fresh_tenant):
    appended, release, other_done = threading.Event(), threading.Event(), threading.Event()
    slow = threading.Thread(target=_append_and_hold, args=(fresh_tenant, appended, release))
    slow.start()
    assert appended.wait(HOLD)
    fast = threading.Thread(target=_append, args=(fresh_tenant, other_done))
    fast.start()
    # The fast writer cannot commit ahead of the open one in the same tenant ...
    assert not other_done.wait(1.0)
    with schema_context(fresh_tenant.schema_name):
        run_all()  # ... so a projection run now sees neither and advances past nothing.
        assert ProjectionState.objects.get(name="system_metrics").position == 0
    release.set()
    slow.join()
    fast.join()
    assert other_done.is_set()
    with schema_context(fresh_tenant.schema_name):
        run_all()
        assert SystemMetrics.objects.get(scope="tenant").message_count == 2
        assert sum(SystemStatus.objects.values_list("messages_logged", flat=True)) == 2


def test_concurrent_writers_and_a_running_projection_apply_every_event_exactly_once(fresh_tenant):
    writers, per_writer = 4, 25
    stop = threading.Event()

    def write():
        try:
            with schema_context(fresh_tenant.schema_name):
                store = PostgresEventStore(get_registry(), snapshot_every=0)
                for _ in range(per_writer):
                    with transaction.atomic():
                        store.append(store.load(System, uuid.uuid4()), [MessageLogged(text="x")], META)
        finally:
            connections.close_all()

    def project():
        try:
            with schema_context(fresh_tenant.schema_name):
                while not stop.is_set():
                    run_all()
        finally:
            connections.close_all()

    runner = threading.Thread(target=project)
    runner.start()
    threads = [threading.Thread(target=write) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    runner.join()
    with schema_context(fresh_tenant.schema_name):
        run_all()
        total = Event.objects.count()
        assert total == writers * per_writer
        assert SystemMetrics.objects.get(scope="tenant").message_count == total
        assert SystemStatus.objects.count() == total


def test_appends_in_two_tenants_do_not_wait_for_each_other(fresh_tenant, world):
    appended, release, other_done = threading.Event(), threading.Event(), threading.Event()
    holder = threading.Thread(target=_append_and_hold, args=(world.acme, appended, release))
    holder.start()
    try:
        assert appended.wait(HOLD)
        other = threading.Thread(target=_append, args=(fresh_tenant, other_done))
        other.start()
        # The other tenant commits while acme still holds its append lock.
        assert other_done.wait(HOLD)
        assert not release.is_set()
        other.join()
    finally:
        release.set()
        holder.join()
