"""Worker and web memory with many tenants (issue 16: "a thousand tenants").

Processes: the web server as `make run` runs it (gunicorn, intent_project/gunicorn_conf.py)
and one Celery worker started the README's way (`--concurrency 2`); the client threads run
in the bench process.

1. N tenants (1,000 at scale 1) named `bf-0000`...: dropped after the run like every bench
   tenant, except with `--keep`, when the next run reuses them; and one user, a member of all.
2. RSS of every web and worker process once both are ready and have served one command.
3. Every tenant gets commands over HTTP (`POST ?wait=`, 16 client threads, in tenant order,
   ROUNDS times), so each process has met every tenant: its caches, its connections'
   catalog caches, the per-tenant state of the worker. Then one sweep of every tenant, run
   by the worker. Then the RSS again; figure: the largest process of each tier.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import Context, Result, Target
from bench.endtoend import Client, web_shape
from bench.pipeline import rss_of
from bench.procs import Processes, free_port

FLEET_PREFIX = "bf-"
CLIENTS = 16
ROUNDS = 2
LIMIT_MB = 250.0


def ensure_fleet(ctx: Context, n: int) -> list[Any]:
    """The first `n` fleet tenants, creating the missing ones."""
    from django.db import connection

    from intent_project.tenants.models import Tenant
    from intent_project.tenants.services import create_tenant

    slugs = [f"{FLEET_PREFIX}{i:04d}" for i in range(n)]
    have = set(Tenant.objects.filter(slug__in=slugs).values_list("slug", flat=True))
    missing = [slug for slug in slugs if slug not in have]
    if missing:
        ctx.log(f"fleet: creating {len(missing)} tenants ({len(have)} kept from an earlier run)")
        t0 = time.perf_counter()
        for count, slug in enumerate(missing, start=1):
            create_tenant(slug, "bench fleet")
            if count % 100 == 0:
                ctx.log(f"fleet: {count} created, {(time.perf_counter() - t0) / count:.3f} s each")
        connection.set_schema_to_public()  # type: ignore[attr-defined]
    fleet = list(Tenant.objects.filter(slug__in=slugs).order_by("slug"))
    ctx.tenants.extend(fleet)  # dropped by ctx.cleanup() unless --keep
    return fleet


def _member_of_all(ctx: Context, tenants: list[Any]) -> str:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from intent_project.tenants.models import Membership

    user = get_user_model().objects.create_user(f"bx-fleet-{ctx.run_id}", "", None)
    Membership.objects.bulk_create(Membership(user=user, tenant=t, role="admin") for t in tenants)
    ctx.on_cleanup(user.delete)
    _, token = AuthToken.objects.create(user=user)
    return str(token)


def _send_all(client: Client, tenants: list[Any], rounds: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def send(slug: str) -> None:
        body = {
            "id": str(uuid.uuid4()),
            "type": "logMessage",
            "payload": {"message": "fleet", "systemId": str(uuid.uuid4())},
        }
        status, data = client.request("POST", f"/t/{slug}/api/commands/?wait=10", body)
        outcome = data.get("status", str(status)) if isinstance(data, dict) else str(status)
        with lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, [t.slug for _ in range(rounds) for t in tenants]))
    return outcomes


def _tier(memory: dict[int, float]) -> float | None:
    return max(memory.values(), default=None)


SWEEP = "intent_project.tasks.sweep_all_tenants"


def _sweeps_done(node: str) -> int:
    from intent_project.celery import app

    stats = app.control.inspect(destination=[node], timeout=5.0).stats() or {}
    return int(stats.get(node, {}).get("total", {}).get(SWEEP, 0))


def _sweep_on_worker(node: str, timeout: float) -> None:
    """One sweep of every tenant, run by the worker; returns once the worker counts it done
    (the task keeps no result: the worker's own task counters tell)."""
    from intent_project.celery import app

    done = _sweeps_done(node)
    app.send_task(SWEEP)
    deadline = time.monotonic() + timeout
    while _sweeps_done(node) <= done and time.monotonic() < deadline:
        time.sleep(0.5)


def run_fleet(ctx: Context) -> list[Result]:
    n = ctx.n(1000, minimum=20)
    tenants = ensure_fleet(ctx, n)
    token = _member_of_all(ctx, tenants)
    procs = Processes("fleet")
    ctx.on_cleanup(lambda: procs.stop(keep_logs=ctx.keep))
    port = free_port()
    web = procs.web(port, WAITS_PER_USER=str(CLIENTS * 2))
    worker = procs.worker("worker", concurrency=2)
    web.wait_healthy(port)
    worker.wait_for("ready.", 60)
    client = Client(port, token)
    _send_all(client, tenants[:1], 1)
    before_web, before_worker = rss_of(web.pids()), rss_of(worker.pids())
    ctx.log(
        f"fleet: {n} tenants; RSS after one command: web {_tier(before_web):.0f} MB, "
        f"worker {_tier(before_worker):.0f} MB (largest process)"
    )
    t0 = time.perf_counter()
    outcomes = _send_all(client, tenants, ROUNDS)
    sent_seconds = time.perf_counter() - t0
    ctx.log(f"fleet: {ROUNDS} commands in each of {n} tenants in {sent_seconds:.0f} s: {outcomes}")
    t1 = time.perf_counter()
    _sweep_on_worker(Processes.node_name("worker"), ctx.seconds(600, minimum=60))
    sweep_seconds = time.perf_counter() - t1
    after_web, after_worker = rss_of(web.pids()), rss_of(worker.pids())
    ctx.log(
        f"fleet: RSS after every tenant: web {_tier(after_web):.0f} MB, worker {_tier(after_worker):.0f} MB"
    )
    common = {
        "tenants": n,
        "commands_per_tenant": ROUNDS,
        "outcomes": outcomes,
        "seconds_sending": round(sent_seconds, 1),
        "sweep_seconds": round(sweep_seconds, 2),
    }
    return [
        _row(
            "worker",
            after_worker,
            before_worker,
            common,
            "Celery worker, --concurrency 2 (prefork)",
            f"largest worker process after commands and a sweep in each of {n} tenants",
        ),
        _row(
            "web",
            after_web,
            before_web,
            common,
            web_shape(),
            f"largest web process after serving commands in each of {n} tenants",
        ),
    ]


def _row(
    tier: str,
    after: dict[int, float],
    before: dict[int, float],
    common: dict[str, Any],
    shape: str,
    note: str,
) -> Result:
    return Result(
        name=f"{tier}_memory_many_tenants",
        ours=_tier(after),
        unit="MB RSS",
        target=Target(f"< {LIMIT_MB:.0f} MB per process", "ours", "<", LIMIT_MB),
        extra={
            **common,
            tier: shape,
            "rss_mb_by_pid_before": {str(p): round(mb, 1) for p, mb in before.items()},
            "rss_mb_by_pid": {str(p): round(mb, 1) for p, mb in after.items()},
        },
        note=note,
    )
