"""kill -9 Celery workers while commands run: nothing lost, nothing done twice."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.faults.checks import print_figures, verify_everything
from tests.faults.cluster import TENANTS
from tests.faults.workload import Submitter, plan, system_ids

pytestmark = pytest.mark.faults

WORKERS = 3
SYSTEMS_PER_TENANT = 10
LOAD_SECONDS = 25.0  # submission window (x FAULTS_SCALE); kills continue until it ends
KILL_EVERY = (1.5, 3.5)  # seconds between two kills, drawn at random


def _victim(cluster: Any, rng: random.Random) -> tuple[int, int]:
    """A worker that is up and, preferably, in the middle of tasks (a worker still booting
    after the previous kill would make the kill a no-op)."""
    candidates = [(w.in_flight_tasks(), i) for i, w in enumerate(cluster.workers) if "ready." in w.output()]
    if not candidates:
        index = rng.randrange(len(cluster.workers))
        return index, cluster.workers[index].in_flight_tasks()
    busiest = max(n for n, _ in candidates)
    index = rng.choice([i for n, i in candidates if n == busiest])
    return index, busiest


def test_killing_workers_mid_flight_loses_nothing_and_doubles_nothing(
    make_cluster: Any, fault_scale: float, fault_rng: random.Random
) -> None:
    cluster = make_cluster(workers=WORKERS)
    planned = plan(int(3000 * fault_scale), system_ids(TENANTS, SYSTEMS_PER_TENANT, fault_rng), fault_rng)
    submitter = Submitter(cluster, planned, threads=6, time_box=LOAD_SECONDS * fault_scale, max_open=40)

    kills: list[tuple[float, str, int]] = []  # (seconds into the run, which, unfinished tasks)
    killed_all_at: float | None = LOAD_SECONDS * fault_scale * fault_rng.uniform(0.4, 0.6)
    submitter.start()
    next_kill = time.monotonic() + fault_rng.uniform(*KILL_EVERY)
    while not submitter.done():
        if killed_all_at is not None and submitter.elapsed() >= killed_all_at:
            # Every consumer gone at once: queued and reserved messages have nobody to go to.
            in_flight = sum(w.in_flight_tasks() for w in cluster.workers)
            for worker in cluster.workers:
                worker.kill()
            cluster.kills += len(cluster.workers)
            kills.append((round(submitter.elapsed(), 1), "all", in_flight))
            for worker in cluster.workers:
                worker.start()
            killed_all_at = None
            next_kill = time.monotonic() + fault_rng.uniform(*KILL_EVERY)
        elif time.monotonic() >= next_kill:
            index, in_flight = _victim(cluster, fault_rng)
            cluster.kill_worker(index)
            kills.append((round(submitter.elapsed(), 1), f"w{index}", in_flight))
            next_kill = time.monotonic() + fault_rng.uniform(*KILL_EVERY)
        time.sleep(0.05)
    stats = submitter.join(timeout=60)
    last_fault = time.monotonic()
    cluster.wait_workers_ready(60)
    cluster.wait_all_final(timeout=90)
    settled = time.monotonic() - last_fault

    problems, figures = verify_everything(cluster, submitter.attempted)
    outcomes = cluster.task_outcomes()
    print_figures(
        "kill -9 of Celery workers during processing",
        {
            "commands": f"{len(submitter.attempted)} over {len(TENANTS)} tenants x {SYSTEMS_PER_TENANT} systems",
            "submission": stats.summary(),
            "kills": f"{cluster.kills} worker process groups killed in {len(kills)} kill events",
            "kill events (t, which, tasks received and unfinished)": kills,
            "kills that hit unfinished tasks": sum(1 for k in kills if k[2] > 0),
            "settled after the last kill (s)": round(settled, 1),
            "process_command outcomes": dict(outcomes),
            **figures,
        },
    )
    assert not stats.rejected, stats.rejected[:5]
    assert not stats.unsent, stats.unsent[:5]
    assert kills, "the test never killed a worker"
    assert not cluster.dead_processes(), cluster.dead_processes()
    assert not problems, "\n".join(problems)
