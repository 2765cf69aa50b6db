"""`/ready/`: database, migrations, broker and a live worker per queue; 503 when one fails.

Workers are real Celery workers announcing themselves with their heartbeat; the broker
outage is a real connection refused (a Redis URL nobody listens on).
"""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.test import Client

from intent_project import readiness
from tests.conftest import start_worker, wait_until

pytestmark = pytest.mark.worker


def _forget_workers() -> None:
    """A worker killed by an earlier test leaves its key until the TTL; start from none."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=readiness.HEARTBEAT_PREFIX + "*"):
        client.delete(key)


def _ready() -> tuple[int, dict]:
    response = Client().get("/ready/")
    return response.status_code, response.json()


def test_it_is_not_ready_without_a_worker_and_says_which_check_failed(live_db):
    _forget_workers()
    status, body = _ready()
    assert status == 503
    assert body["status"] == "not_ready"
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["migrations"]["ok"] and checks["broker"]["ok"]
    assert checks["workers"] == {
        "ok": False,
        "workers": 0,
        "queues": {"commands": 0, "projections": 0, "sweeps": 0},
    }


def test_a_worker_makes_it_ready_and_leaves_when_it_stops(live_db, tmp_path):
    _forget_workers()
    worker = start_worker(tmp_path / "worker.log")
    try:
        status, body = wait_until(lambda: (r := _ready())[0] == 200 and r)
        assert body["status"] == "ready"
        assert body["checks"]["workers"]["queues"] == {"commands": 1, "projections": 1, "sweeps": 1}
        # It names checks and counts, never hosts: anyone who can reach the probe reads it.
        assert "celery@" not in str(body)
    finally:
        worker.stop()
    status, body = _ready()  # a clean shutdown removes the heartbeat at once
    assert status == 503 and body["checks"]["workers"]["workers"] == 0


def test_a_worker_serving_only_some_queues_is_not_enough(live_db, tmp_path):
    _forget_workers()
    worker = start_worker(tmp_path / "worker.log", "-Q", "commands")
    try:
        wait_until(lambda: _ready()[1]["checks"]["workers"]["workers"] == 1)
        status, body = _ready()
        assert status == 503
        assert body["checks"]["workers"]["queues"] == {"commands": 1, "projections": 0, "sweeps": 0}
    finally:
        worker.stop()


def test_an_unreachable_broker_is_reported_by_class_not_by_address(live_db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    status, body = _ready()
    assert status == 503
    assert body["checks"]["broker"] == {"ok": False, "error": "ConnectionError"}
    assert body["checks"]["workers"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in str(body)
