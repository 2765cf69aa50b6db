"""Many workers, few hot aggregates: optimistic concurrency keeps every invariant, and the
conflict retries converge (no command fails for losing races)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.faults.checks import print_figures, verify_everything
from tests.faults.cluster import TENANTS
from tests.faults.workload import Submitter, plan, system_ids

pytestmark = pytest.mark.faults

WORKERS = 6  # x concurrency 2: twelve processes racing for four aggregates
SYSTEMS_PER_TENANT = 2
LOAD_SECONDS = 25.0


def test_many_workers_on_few_hot_aggregates_keep_every_invariant_and_converge(
    make_cluster: Any, fault_scale: float, fault_rng: random.Random
) -> None:
    cluster = make_cluster(workers=WORKERS)
    log_offset = cluster.postgres_log_offset()
    planned = plan(
        int(3000 * fault_scale),
        system_ids(TENANTS, SYSTEMS_PER_TENANT, fault_rng),
        fault_rng,
        weights=(0.2, 0.2, 0.6),  # mostly executeTest: its event depends on the state it read
    )
    # Plenty of commands in flight at once, so several workers decide on the same version.
    submitter = Submitter(cluster, planned, threads=8, time_box=LOAD_SECONDS * fault_scale, max_open=80)
    submitter.start()
    stats = submitter.join(timeout=90)
    last_sent = time.monotonic()
    cluster.wait_all_final(timeout=90)
    settled = time.monotonic() - last_sent

    problems, figures = verify_everything(cluster, submitter.attempted)
    conflicts = cluster.postgres_log_count("event_stream_version_unique", since=log_offset)
    retried = cluster.sql(
        " UNION ALL ".join(
            f"SELECT count(*) FROM t_{slug}.commands_app_command WHERE attempts > 1" for slug in TENANTS
        )
    )
    print_figures(
        f"{WORKERS} workers x {cluster.concurrency} on {SYSTEMS_PER_TENANT * len(TENANTS)} hot aggregates",
        {
            "commands": f"{len(submitter.attempted)} over {len(TENANTS)} tenants x {SYSTEMS_PER_TENANT} systems",
            "submission": stats.summary(),
            "version conflicts (lost append races, from the PostgreSQL log)": conflicts,
            "commands needing more than one delivery": sum(r[0] for r in retried),
            "settled after the last submission (s)": round(settled, 1),
            "process_command outcomes": dict(cluster.task_outcomes()),
            **figures,
        },
    )
    assert not stats.rejected and not stats.unsent
    assert not cluster.dead_processes(), cluster.dead_processes()
    assert not problems, "\n".join(problems)
