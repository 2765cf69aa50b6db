"""The cap on concurrent waits per user (intent_project/waits.py), against real Redis."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from intent_project import waits
from intent_project.waits import TooManyWaits


@pytest.fixture
def limit(settings, isolated_redis):
    settings.WAITS_PER_USER = 3
    return 3


def owner() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_a_user_gets_at_most_waits_per_user_places_and_other_users_are_unaffected(limit):
    alice, bob = owner(), owner()
    held = [waits.acquire(alice, 10) for _ in range(limit)]

    with pytest.raises(TooManyWaits) as refused:
        waits.acquire(alice, 10)
    assert refused.value.status_code == 429
    assert refused.value.error_code == "too_many_waits"
    assert refused.value.details == {"limit": limit}
    assert refused.value.wait >= 1  # sent as Retry-After
    assert waits.in_progress(alice) == limit
    waits.acquire(bob, 10)  # bob has his own places
    assert waits.in_progress(bob) == 1

    waits.release(held[0])
    waits.acquire(alice, 10)  # a place given back can be taken again
    assert waits.in_progress(alice) == limit


def test_the_places_of_a_process_that_died_mid_wait_are_free_once_their_deadline_passed(limit):
    alice = owner()
    client = redis.Redis.from_url(waits.settings.REDIS_URL)
    # Three waits of a process killed before it could release them, their deadline past:
    client.zadd(f"intent:waits:{alice}", {f"dead-{i}": time.time() - 1 for i in range(limit)})

    waits.acquire(alice, 10)

    assert waits.in_progress(alice) == 1


def test_concurrent_requests_never_get_more_places_than_the_cap(limit):
    alice = owner()
    admitted: list[waits.WaitSlot] = []
    refused: list[TooManyWaits] = []
    start = threading.Barrier(20)

    def take() -> None:
        start.wait()
        try:
            admitted.append(waits.acquire(alice, 10))
        except TooManyWaits as exc:
            refused.append(exc)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) == limit
    assert len(refused) == 20 - limit
    assert waits.in_progress(alice) == limit


def test_without_redis_the_cap_still_holds_within_the_process(limit, monkeypatch):
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(waits, "redis_client", lambda: unreachable)
    alice = owner()
    held = [waits.acquire(alice, 10) for _ in range(limit)]

    with pytest.raises(TooManyWaits):
        waits.acquire(alice, 10)
    waits.release(held[0])  # never raises, even without Redis
    waits.acquire(alice, 10)
