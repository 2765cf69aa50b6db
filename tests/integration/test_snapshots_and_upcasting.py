"""Snapshots and upcasting on the PostgreSQL store: the newest usable snapshot plus later
events, unusable snapshots ignored, old ones upcast, old event payloads read as current
on every read path, and stored rows never rewritten."""

from __future__ import annotations

import uuid

from django.db import transaction
from django_tenants.utils import schema_context

from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.models import Event, Snapshot
from events_app.store import PostgresEventStore
from projections_app.models import SystemStatus
from projections_app.rebuild import rebuild
from projections_app.registry import get_projection
from projections_app.runner import run_projection

META = {"command_id": None, "correlation_id": None}


def _append(store: PostgresEventStore, system_id: uuid.UUID, count: int, level: str = "info") -> System:
    for i in range(count):
        with transaction.atomic():
            system = store.load(System, system_id)
            store.append(system, [MessageLogged(text=f"m{i}", level=level)], META)
    return store.load(System, system_id)


def _replayed(store: PostgresEventStore, system_id: uuid.UUID) -> System:
    system = System(id=system_id)
    for rec in store.read_stream("system", system_id):
        system.evolve(rec.event, rec.version)
    return system


def test_it_loads_the_newest_snapshot_and_only_the_events_after_it(fresh_tenant):
    system_id = uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=10)
        loaded = _append(store, system_id, 25)
        assert sorted(Snapshot.objects.filter(stream_id=system_id).values_list("version", flat=True)) == [
            10,
            20,
        ]
        assert loaded == _replayed(store, system_id)
        # Prove the snapshot at 20 is what loading starts from: mark its state.
        snapshot = Snapshot.objects.get(stream_id=system_id, version=20)
        snapshot.state = {**snapshot.state, "messages_logged": 1000}
        snapshot.save()
        assert store.load(System, system_id).messages_logged == 1000 + 5


def test_an_unusable_snapshot_is_ignored_and_the_stream_replayed(fresh_tenant):
    system_id = uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=5)
        _append(store, system_id, 12)
        Snapshot.objects.filter(stream_id=system_id, version=10).update(state={"garbage": True})
        Snapshot.objects.filter(stream_id=system_id, version=5).update(schema_version=99)  # from newer code
        assert store.load(System, system_id) == _replayed(store, system_id)


def test_an_unusable_newest_snapshot_falls_back_to_an_older_one_and_the_events_after_it(fresh_tenant):
    """One query reads each stream's newest snapshot and the events after it; a stream
    whose newest snapshot cannot be used is restored from an older one, and gets the
    events from there, beside streams loaded from their newest snapshot or from none."""
    fallen_back, snapshotted, bare = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=5)
        _append(store, fallen_back, 12)
        _append(store, snapshotted, 7)
        _append(store, bare, 3)
        Snapshot.objects.filter(stream_id=fallen_back, version=10).update(state={"garbage": True})
        older = Snapshot.objects.get(stream_id=fallen_back, version=5)
        Snapshot.objects.filter(pk=older.pk).update(state={**older.state, "messages_logged": 500})

        loaded = store.load_many({("system", sid): System for sid in (fallen_back, snapshotted, bare)})

        assert loaded[("system", fallen_back)].messages_logged == 500 + 7  # from v5, then v6..v12
        assert loaded[("system", fallen_back)].version == 12
        assert loaded[("system", snapshotted)] == _replayed(store, snapshotted)
        assert loaded[("system", bare)] == _replayed(store, bare)


def test_a_snapshot_of_an_older_state_schema_is_upcast(fresh_tenant):
    system_id = uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=4)
        _append(store, system_id, 6)
        snapshot = Snapshot.objects.get(stream_id=system_id, version=4)
        state = dict(snapshot.state)
        del state["messages_by_level"]  # the v1 shape
        Snapshot.objects.filter(pk=snapshot.pk).update(
            state={**state, "messages_logged": 40}, schema_version=1
        )

        loaded = store.load(System, system_id)
    assert loaded.messages_by_level == {"info": 40 + 2}  # upcast v1 -> v2, then two more events
    assert loaded.messages_logged == 42


def test_the_snapshot_interval_is_configured_per_aggregate_type(fresh_tenant, settings):
    settings.SNAPSHOT_EVERY_BY_TYPE = {"system": 3}
    system_id = uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        _append(PostgresEventStore(get_registry()), system_id, 7)
        versions = sorted(Snapshot.objects.filter(stream_id=system_id).values_list("version", flat=True))
    assert versions == [3, 6]


def _legacy_event(system_id: uuid.UUID) -> Event:
    """A messageLogged as the reference platform stored it: v1, `message` not `text`."""
    return Event.objects.create(
        stream_type="system",
        stream_id=system_id,
        version=1,
        type="messageLogged",
        schema_version=1,
        payload={"message": "from v1", "systemId": str(system_id)},
        metadata={},
    )


def test_a_v1_event_reads_as_v3_when_loading_projecting_and_rebuilding(fresh_tenant):
    system_id = uuid.uuid4()
    with schema_context(fresh_tenant.schema_name):
        row = _legacy_event(system_id)
        store = PostgresEventStore(get_registry())
        system = store.load(System, system_id)
        assert (system.messages_logged, system.messages_by_level, system.version) == (1, {"info": 1}, 1)

        run_projection(get_projection("system_status"))
        status = SystemStatus.objects.get(system_id=system_id)
        assert (status.last_message, status.last_message_level) == ("from v1", "info")

        rebuild("system_status")
        rebuilt = SystemStatus.objects.get(system_id=system_id)
        assert (rebuilt.last_message, rebuilt.last_message_level) == ("from v1", "info")

        stored = Event.objects.get(pk=row.pk)
    assert (stored.schema_version, stored.payload) == (1, {"message": "from v1", "systemId": str(system_id)})


def test_the_events_api_shows_the_current_shape_and_the_stored_version(live_db, world):
    system_id = uuid.uuid4()
    with schema_context(world.acme.schema_name):
        row = _legacy_event(system_id)
    # A developer reads every event of the system slice (a tester only those of its commands).
    body = world["dave"].client().get(f"/t/acme/api/events/{row.id}/").json()
    assert body["payload"] == {"text": "from v1", "level": "info", "systemId": str(system_id)}
    assert (body["schema_version"], body["stored_schema_version"]) == (3, 1)
