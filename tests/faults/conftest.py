"""Fixtures of the fault tier: private services for the session, a fresh cluster per test.

Nothing here touches the main test session's database or Redis (no `db` fixtures, and
DATABASE_URL / REDIS_URL of the outer environment are ignored): `Services` starts its own
embedded PostgreSQL and Redis under /tmp/flt-<random>, and every test gets its own copy
of a bootstrapped database with its own web server, workers and beat.

Run: ``make test PYTEST_ARGS="tests/faults -rA -s"``, or ``.venv/bin/python -m pytest tests/faults
-rA -s`` with SECRET_KEY set (the settings refuse to load without one; no other services needed).
Knobs: ``FAULTS_SCALE`` (default 1) stretches the load windows for a longer soak;
``FAULTS_SEED`` fixes the random choices (commands, systems, fault schedule; each test
prints its seed); ``FAULTS_KEEP_LOGS=<dir>`` keeps every process log for a post-mortem
(they are deleted otherwise; on a failure the tail of each log is printed anyway).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.faults.cluster import Cluster, Services, reap_orphans, stop_all_live

atexit.register(stop_all_live)  # last resort if a fixture never reached its teardown


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "faults: starts private PostgreSQL, Redis, web, Celery workers and beat, then injects real "
        "faults (kill -9, broker outage, database restart)",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"_fault_report_{report.when}", report)
    return report


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM (CI timeout, `kill`) unwinds like Ctrl-C, so the fixtures' teardown runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fault_scale() -> float:
    """FAULTS_SCALE stretches every load window and command budget (default 1: fits the
    ~90 s per test budget on a 2-core machine; e.g. 4 for a longer soak)."""
    return float(os.environ.get("FAULTS_SCALE", "1"))


@pytest.fixture
def fault_rng(request: pytest.FixtureRequest) -> random.Random:
    """The test's random source; FAULTS_SEED fixes it (the seed is printed)."""
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"[{request.node.name}] FAULTS_SEED={seed}")
    return random.Random(seed)


@pytest.fixture(scope="session")
def fault_services() -> Iterator[Services]:
    with _sigterm_as_interrupt():
        reap_orphans()
        services = Services()
        try:
            services.start()
            yield services
        finally:
            services.stop()


@pytest.fixture
def make_cluster(
    fault_services: Services, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Cluster]]:
    """Start a cluster (web + workers + beat over a fresh database); stopped after the test.

    On failure the tail of every log is printed before the logs are deleted."""
    clusters: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        kwargs.setdefault("name", request.node.name.removeprefix("test_")[:30])
        cluster = Cluster(fault_services, **kwargs)
        clusters.append(cluster)
        cluster.start()
        return cluster

    with _sigterm_as_interrupt():
        try:
            yield make
        finally:
            report = getattr(request.node, "_fault_report_call", None)
            failed = report is None or report.failed
            for cluster in clusters:
                if failed:
                    cluster.dump_logs()
                cluster.stop()
