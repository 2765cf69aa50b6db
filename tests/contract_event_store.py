"""The event-store contract. Both stores run it: the in-memory one (tests/unit) and the
PostgreSQL one (tests/integration), so unit tests on the fake stay honest."""

from __future__ import annotations

import uuid

import pytest

from commands_app.domain.errors import ConcurrencyError
from commands_app.slices.system.aggregate import System
from commands_app.slices.system.payloads import MessageLogged, TestExecuted

META = {"command_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), "causation_id": None}


class EventStoreContract:
    """Subclasses provide a `store` fixture (and whatever transaction it needs)."""

    def test_a_new_stream_starts_at_version_one(self, store):
        system = store.load(System, uuid.uuid4())
        assert system.version == 0
        recorded = store.append(system, [MessageLogged(text="a"), MessageLogged(text="b")], META)
        assert [r.version for r in recorded] == [1, 2]
        assert system.version == 2

    def test_it_rejects_a_stale_version_and_writes_nothing(self, store):
        system_id = uuid.uuid4()
        first = store.load(System, system_id)
        second = store.load(System, system_id)
        store.append(first, [MessageLogged(text="winner")], META)
        with pytest.raises(ConcurrencyError):
            store.append(second, [MessageLogged(text="loser")], META)
        assert [r.event.text for r in store.read_stream("system", system_id)] == ["winner"]

    def test_a_long_append_keeps_its_order_and_a_stale_one_writes_nothing(self, store):
        system_id = uuid.uuid4()
        first, second = store.load(System, system_id), store.load(System, system_id)
        recorded = store.append(first, [MessageLogged(text=str(i)) for i in range(25)], META)
        assert [r.version for r in recorded] == list(range(1, 26))
        assert [r.position for r in recorded] == sorted(r.position for r in recorded)
        with pytest.raises(ConcurrencyError):
            store.append(second, [MessageLogged(text="late") for _ in range(25)], META)
        stream = store.read_stream("system", system_id)
        assert [r.event.text for r in stream] == [str(i) for i in range(25)]
        assert second.version == 0  # a lost race leaves the aggregate as it was

    def test_an_aggregate_refreshed_after_a_lost_race_holds_the_winner_and_can_append(self, store):
        system_id = uuid.uuid4()
        first, second = store.load(System, system_id), store.load(System, system_id)
        store.append(first, [MessageLogged(text="winner")], META)
        with pytest.raises(ConcurrencyError):
            store.append(second, [MessageLogged(text="decided again")], META)
        assert store.refresh(second) is True
        assert second.version == 1
        (rec,) = store.append(second, [MessageLogged(text="decided again")], META)
        assert rec.version == 2
        assert [r.event.text for r in store.read_stream("system", system_id)] == ["winner", "decided again"]

    def test_loading_replays_the_stream_into_state(self, store):
        system_id = uuid.uuid4()
        system = store.load(System, system_id)
        store.append(system, [MessageLogged(text="a")], META)
        store.append(
            system,
            [
                TestExecuted(
                    test_id=uuid.uuid4(),
                    test_name="t",
                    tester_id="1",
                    result="success",
                    executed_at="2026-01-01T00:00:00Z",
                    number_executed_tests=1,
                )
            ],
            META,
        )
        loaded = store.load(System, system_id)
        assert (loaded.version, loaded.messages_logged, loaded.number_executed_tests) == (2, 1, 1)
        assert loaded == system

    def test_positions_grow_across_streams(self, store):
        a = store.append(store.load(System, uuid.uuid4()), [MessageLogged(text="a")], META)
        b = store.append(store.load(System, uuid.uuid4()), [MessageLogged(text="b")], META)
        assert b[0].position > a[0].position

    def test_streams_read_back_in_version_order_with_their_metadata(self, store):
        system_id = uuid.uuid4()
        store.append(store.load(System, system_id), [MessageLogged(text=str(i)) for i in range(5)], META)
        stream = store.read_stream("system", system_id)
        assert [r.version for r in stream] == [1, 2, 3, 4, 5]
        assert [r.event.text for r in stream] == ["0", "1", "2", "3", "4"]
        assert stream[0].metadata["command_id"] == META["command_id"]
