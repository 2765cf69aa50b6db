"""Stop Redis during submission: the API keeps accepting, and nobody has to re-send.

Redis runs without persistence, so stopping it also loses every message queued in it:
after an outage, only the database rows (and the sweep that reads them) say what is left
to do. Two outages: one right after a burst (Redis dies with messages queued and
reserved), one under a light steady load (workers mostly waiting on the broker).

Workers ride out both outages without restarting: kombu 5.7.0 used to make a worker
exit when its broker connection dropped ("AttributeError: 'NoneType' object has no
attribute 'hostname'", from closing a half-closed Redis channel on a detached
transport); `intent_project.celery` fixes that, and this test fails if any worker exits.
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

STEADY_SECONDS = 5.0  # normal operation before, between and after the outages
OUTAGE_SECONDS = 5.0  # each outage
RATE = 8.0  # commands per second, open loop: the API must not depend on the broker
BURST = 40  # commands sent as fast as possible just before the first outage
MAX_OPEN = 40  # between outages, hold back while this many commands are not final


def _recovery_seconds(cluster: Cluster, ids: list[str], up_wall: float) -> float:
    """Seconds from Redis being back until the last of `ids` was processed (processed_at
    is written by the database on this same machine, so wall clocks compare)."""
    last = max(
        (
            row[0]
            for slug in TENANTS
            for row in cluster.sql(
                f"SELECT extract(epoch FROM max(processed_at)) FROM t_{slug}.commands_app_command "
                f"WHERE id = ANY(%s::uuid[])",
                (ids,),
            )
            if row[0] is not None
        ),
        default=None,
    )
    return round(float(last) - up_wall, 1) if last is not None else float("nan")


def test_commands_sent_while_redis_is_down_are_accepted_and_processed_once_it_is_back(
    make_cluster: Any, fault_scale: float, fault_rng: random.Random
) -> None:
    cluster = make_cluster(workers=3)
    systems = system_ids(TENANTS, 10, fault_rng)
    # Closed loop between outages (a slow machine gets a smaller backlog, not a longer
    # test), open loop while Redis is down: the API must keep accepting regardless.
    submitter = Submitter(
        cluster, plan(int(2000 * fault_scale), systems, fault_rng), threads=6, rate=RATE, max_open=MAX_OPEN
    )
    submitter.start()
    steady, outage = STEADY_SECONDS * fault_scale, OUTAGE_SECONDS * fault_scale

    cluster.sleep_supervised(steady)
    # Outage 1, right after a burst: Redis dies with messages queued and reserved.
    burst = Submitter(cluster, plan(BURST, systems, fault_rng), threads=6).start()
    burst.join(timeout=60)
    windows: list[dict[str, Any]] = []
    for label in ("after a burst", "under light load"):
        window: dict[str, Any] = {"when": label, "queued": cluster.queue_lengths()}
        crashes_before = len(cluster.crashes)
        submitter.max_open = None
        window["down_at"] = time.monotonic()
        cluster.stop_redis()
        cluster.sleep_supervised(outage)
        window["up_at"], window["up_wall"] = time.monotonic(), time.time()
        cluster.start_redis()
        submitter.max_open = MAX_OPEN
        cluster.sleep_supervised(steady)
        window["crashed"] = [name for name, _ in cluster.crashes[crashes_before:]]
        windows.append(window)
    submitter.stop_new()
    while not submitter.done():
        cluster.sleep_supervised(0.2)
    stats = submitter.join(timeout=90)
    last_sent = time.monotonic()
    cluster.wait_all_final(timeout=90)
    settled = time.monotonic() - last_sent
    cluster.supervise()

    outages = []
    for w in windows:
        accepted = [cid for cid, at in stats.accepted_at.items() if w["down_at"] < at < w["up_at"]]
        outages.append(
            {
                "when": w["when"],
                "messages queued when it stopped": w["queued"],
                "down (s)": round(w["up_at"] - w["down_at"], 1),
                "accepted meanwhile": len(accepted),
                "stored as": sorted({stats.first_status.get(cid) for cid in accepted}, key=str),
                "the last of them processed after Redis was back (s)": _recovery_seconds(
                    cluster, accepted, w["up_wall"]
                ),
                "workers that exited": w["crashed"],
            }
        )
    attempted = submitter.attempted + burst.attempted
    problems, figures = verify_everything(cluster, attempted)
    print_figures(
        "Redis stopped during submission",
        {
            "commands": f"{len(attempted)} ({RATE:.0f}/s, and a burst of {BURST}) over {len(TENANTS)} tenants",
            "submission": stats.summary(),
            "burst": burst.stats.summary(),
            "outages": outages,
            "settled after the last submission (s)": round(settled, 1),
            "process_command outcomes": dict(cluster.task_outcomes()),
            "workers that exited by themselves (restarted)": cluster.crashes or "none",
            **figures,
        },
    )
    assert all(o["accepted meanwhile"] for o in outages), "no command was submitted while Redis was down"
    assert stats.first_try.keys() == {202}, (
        f"the API did not accept every command at once: {stats.errors[:5]}"
    )
    assert stats.resent == 0 and not stats.unsent and not stats.rejected
    assert burst.stats.resent == 0 and not burst.stats.unsent and not burst.stats.rejected
    assert all(o["stored as"] == ["pending"] for o in outages), outages
    assert not cluster.dead_processes(), f"processes died during the outage: {cluster.dead_processes()}"
    assert not problems, "\n".join(problems)
    assert not cluster.crashes, f"workers exited when Redis went away: {cluster.crashes}"
