"""Restart PostgreSQL while commands are processed: every process reconnects by itself and
nothing is lost or doubled.

A fast shutdown cuts every client connection (web, workers' persistent connections,
transactions in flight); while the server is down the API cannot store commands, so the
client keeps re-sending each one with the same id until it is accepted, which the
idempotency key makes safe.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.faults.checks import print_figures, verify_everything
from tests.faults.cluster import TENANTS, Cluster
from tests.faults.workload import Submitter, plan, system_ids

pytestmark = pytest.mark.faults

LOAD_SECONDS = 30.0
RESTARTS = ((0.25, 3.0), (0.6, 1.0))  # (when, as a fraction of the load window; seconds down)


def _processed(cluster: Cluster) -> int | None:
    try:
        return sum(
            cluster.sql(f"SELECT count(*) FROM t_{slug}.commands_app_command WHERE status = 'processed'")[0][
                0
            ]
            for slug in TENANTS
        )
    except Exception:
        return None


def _wait_recovery(cluster: Cluster, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds until the web answers /health/ 200 (database and broker reachable through the
    app), and until a worker has processed another command."""
    t0 = time.monotonic()
    web = cluster.web_healthy_within(timeout)
    before = _processed(cluster)
    while True:
        now = _processed(cluster)
        if before is None:
            before = now
        elif now is not None and now > before:
            return web, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"no command processed within {timeout}s after the restart")
        time.sleep(0.1)


def test_restarting_postgres_mid_processing_loses_nothing_and_every_process_reconnects(
    make_cluster: Any, fault_scale: float, fault_rng: random.Random
) -> None:
    cluster = make_cluster(workers=3)
    load = LOAD_SECONDS * fault_scale
    planned = plan(int(3000 * fault_scale), system_ids(TENANTS, 10, fault_rng), fault_rng)
    submitter = Submitter(cluster, planned, threads=6, time_box=load, max_open=40).start()

    restarts: list[dict[str, Any]] = []
    for when, down in RESTARTS:
        while submitter.elapsed() < when * load:
            time.sleep(0.1)
        processed_before = _processed(cluster)
        unavailable = cluster.restart_postgres(down_seconds=down)
        web, worker = _wait_recovery(cluster)
        restarts.append(
            {
                "at (s)": round(submitter.elapsed(), 1),
                "processed before": processed_before,
                "postgres unavailable (s)": round(unavailable, 1),
                "web healthy after (s)": round(web, 1),
                "workers processing again after (s)": round(worker, 1),
            }
        )
    stats = submitter.join(timeout=90)
    last_sent = time.monotonic()
    cluster.wait_all_final(timeout=90)
    settled = time.monotonic() - last_sent

    problems, figures = verify_everything(cluster, submitter.attempted)
    print_figures(
        "PostgreSQL restarted during processing",
        {
            "commands": f"{len(submitter.attempted)} over {len(TENANTS)} tenants",
            "submission": stats.summary(),
            "answers that made the client re-send (t, status)": sorted(
                {(round(t), status) for t, status, _ in stats.errors}
            )[:20],
            "an answer while PostgreSQL was down": next((b for _, st, b in stats.errors if st >= 500), None),
            "restarts": restarts,
            "settled after the last submission (s)": round(settled, 1),
            "process_command outcomes": dict(cluster.task_outcomes()),
            "workers that exited by themselves": cluster.crashes or "none",
            **figures,
        },
    )
    assert not stats.rejected, stats.rejected[:5]
    assert not stats.unsent, f"{len(stats.unsent)} commands never accepted"
    assert not cluster.dead_processes(), f"processes died: {cluster.dead_processes()}"
    assert not problems, "\n".join(problems)
