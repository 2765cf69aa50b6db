"""The PostgreSQL event store against the same contract as the in-memory one."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, DataError, connection, transaction
from django_tenants.utils import schema_context

from commands_app.registry import get_registry
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged
from events_app.models import Event, Snapshot
from events_app.store import _APPENDED, PostgresEventStore
from tests.contract_event_store import META, EventStoreContract


@pytest.fixture
def store(world, db):
    with schema_context(world.acme.schema_name):
        yield PostgresEventStore(get_registry(), snapshot_every=0)


class TestPostgresEventStore(EventStoreContract):
    pass


def test_events_cannot_be_updated_or_deleted(world, db):
    with schema_context(world.acme.schema_name):
        store = PostgresEventStore(get_registry())
        (rec,) = store.append(store.load(System, uuid.uuid4()), [MessageLogged(text="fact")], META)
        for statement in (
            "UPDATE events_app_event SET type = 'x' WHERE id = %s",
            "DELETE FROM events_app_event WHERE id = %s",
        ):
            with pytest.raises(DatabaseError, match="events are immutable"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(statement, [rec.id])
        assert Event.objects.get(id=rec.id).payload == {"text": "fact", "level": "info"}


def test_a_snapshot_is_written_with_the_events_that_cross_the_threshold_and_used_on_load(world, db):
    with schema_context(world.acme.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=3)
        system_id = uuid.uuid4()
        system = store.load(System, system_id)
        store.append(system, [MessageLogged(text="1"), MessageLogged(text="2")], META)
        assert not Snapshot.objects.filter(stream_id=system_id).exists()
        store.append(system, [MessageLogged(text="3"), MessageLogged(text="4")], META)
        snapshot = Snapshot.objects.get(stream_id=system_id)
        assert (snapshot.version, snapshot.state["messages_logged"]) == (4, 4)
        # Loading from the snapshot plus later events equals a full replay ...
        store.append(system, [MessageLogged(text="5")], META)
        assert store.load(System, system_id) == system
        # ... and the snapshot is where loading starts: a marked snapshot shows through.
        Snapshot.objects.filter(stream_id=system_id).update(state={**snapshot.state, "messages_logged": 40})
        assert store.load(System, system_id).messages_logged == 40 + 1
        Snapshot.objects.filter(stream_id=system_id).delete()
        assert store.load(System, system_id) == system


@pytest.mark.parametrize("count", [1, 9], ids=["placeholders", "json-document"])
def test_a_value_too_long_for_its_column_is_refused_not_cut(world, db, count):
    """Both encodings of an append cast to the column's type without its length limit, so
    the column itself refuses a long value (a cast to varchar(64) would silently cut it)."""

    class LongNamed(System):
        TYPE = "s" * 65  # stream_type is varchar(64)

    with schema_context(world.acme.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=0)
        with pytest.raises(DataError, match="too long"), transaction.atomic():
            store.append(LongNamed(id=uuid.uuid4()), [MessageLogged(text=str(i)) for i in range(count)], META)


def test_an_append_writes_every_column_of_the_event_model_but_its_position():
    """The append's column list comes from Event._meta: a new column is one edit away."""
    written = {name for name, _ in _APPENDED.columns}
    assert written == {f.column for f in Event._meta.concrete_fields} - {"position"} | {"n"}
