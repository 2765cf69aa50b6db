"""`/ready/`: whether this deployment can do its work, for a load balancer or an orchestrator.

`/health/` stays the cheap liveness probe (this process answers, the database and the
broker are reachable). `/ready/` also checks that the public schema's migrations are all
applied and that a Celery worker serving each queue has been seen recently, and answers
503 when any check fails. The answer names checks, never tenants or hosts: anyone who can
reach the probe may read it.

Workers announce themselves with a heartbeat: each worker's main process writes
`intent:worker:<hostname>` (the queues it serves, with a time-to-live of
WORKER_HEARTBEAT_TTL_SECONDS) every WORKER_HEARTBEAT_SECONDS from a daemon thread. A
worker that dies stops renewing its key and drops out within the TTL; one that loses
Redis is missed only while Redis is gone (which the broker check reports anyway).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from intent_project.db import replicas

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "intent:worker:"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


# ---- the worker side ------------------------------------------------------------------


def start_heartbeat(hostname: str, queues: list[str]) -> threading.Thread:
    """Announce this worker until the process exits (called on `worker_ready`)."""
    stop = threading.Event()

    def beat() -> None:
        client = _redis()
        key = HEARTBEAT_PREFIX + hostname
        while not stop.is_set():
            value = json.dumps({"queues": sorted(queues), "at": time.time()})
            # Redis away: the broker check says so, and the next beat retries.
            with contextlib.suppress(redis.RedisError):
                client.set(key, value, ex=settings.WORKER_HEARTBEAT_TTL_SECONDS)
            stop.wait(settings.WORKER_HEARTBEAT_SECONDS)
        with contextlib.suppress(redis.RedisError):
            client.delete(key)  # a clean shutdown leaves at once, not after the TTL

    thread = threading.Thread(target=beat, name="intent-worker-heartbeat", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread


def stop_heartbeat(thread: threading.Thread | None, *, wait: bool = True) -> None:
    """End the beats; the thread removes the key. `wait=False` from a signal handler."""
    if thread is not None:
        thread.stop.set()  # type: ignore[attr-defined]
        if wait:
            thread.join(timeout=2)


# ---- the probe ------------------------------------------------------------------------

QUEUES = ("commands", "projections", "sweeps")


def check_database() -> dict[str, Any]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def check_migrations() -> dict[str, Any]:
    """The public schema's migrations are applied (tenant schemas are migrated from it by
    `migrate_schemas`, and a new tenant is created from the migrated template)."""
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return {"ok": not plan, "unapplied": len(plan)}


def check_broker() -> dict[str, Any]:
    _redis().ping()
    return {"ok": True}


def check_workers() -> dict[str, Any]:
    """A worker serving each queue has beaten its heartbeat within its TTL."""
    client = _redis()
    served: dict[str, int] = dict.fromkeys(QUEUES, 0)
    workers = 0
    for key in client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100):
        raw = client.get(key)
        if raw is None:
            continue  # expired between the scan and the read
        workers += 1
        for queue in json.loads(raw).get("queues", []):
            if queue in served:
                served[queue] += 1
    return {"ok": all(served.values()), "workers": workers, "queues": served}


CHECKS = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
    "workers": check_workers,
}


def readiness() -> tuple[bool, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        if name == "migrations" and not results["database"]["ok"]:
            results[name] = {"ok": False, "error": "database unavailable"}
            continue
        try:
            results[name] = check()
        except Exception as exc:
            # The error's class, not its message: a message may carry a host or a DSN.
            results[name] = {"ok": False, "error": type(exc).__name__}
    if replicas.aliases():
        # Reported, never failing: a replica that is down or lagging is skipped and the
        # primary serves its reads.
        results["replicas"] = replicas.report()
    return all(r["ok"] for r in results.values()), results
