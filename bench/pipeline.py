"""Command pipeline, worker only: commands already stored, one real Celery worker processes
them until every one is `processed` (its projections included); then the worker's memory.

1. A fresh tenant; one worker process, `--concurrency 2` (prefork; this is a 2-core machine).
2. Warm-up: a few hundred commands through the ordinary path (submit, wake-up, worker).
3. The worker stops consuming the `commands` queue (Celery remote control), N `logMessage`
   commands (Zipf over 1,000 systems) are stored with `commands_app.bus.submit` with the
   broker wake-up suppressed, then `bus.enqueue` sends their wake-ups the way the bus does
   (a burst coalesces into one queued drain of the tenant).
4. The worker consumes again: the clock runs from that moment until the last of the N is
   `processed` (the database's `processed_at`).
5. The resident memory (RSS) of the worker's processes, right after.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Iterable
from typing import Any
from unittest import mock

from bench.common import Context, Result, Target, latency_summary, stream_ids, zipf_indices
from bench.procs import Processes

OPEN = ("pending", "consumed")


def store_commands(tenant: Any, count: int, seed: int, enqueue: bool) -> list[uuid.UUID]:
    """`count` logMessage commands via the bus, as the API would (role admin)."""
    from django.db import connection, transaction
    from django_tenants.utils import schema_context

    from commands_app import bus

    streams = stream_ids(seed)
    choices = zipf_indices(seed)
    ids = []
    patch: Any = (
        contextlib.nullcontext() if enqueue else mock.patch.object(bus, "enqueue", lambda *a, **k: None)
    )
    with schema_context(tenant.schema_name), patch:
        for start in range(0, count, 500):
            with transaction.atomic():
                for i in range(start, min(count, start + 500)):
                    sub = bus.submit(
                        schema_name=tenant.schema_name,
                        tenant=tenant.slug,
                        type_name="logMessage",
                        payload={"message": f"bench {i}", "systemId": str(streams[next(choices)])},
                        role="admin",
                        user_id="1",
                        username="bench",
                        source="bench",
                    )
                    ids.append(sub.command.id)
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return ids


def status_counts(schema: str, ids: Iterable[uuid.UUID] | None = None) -> dict[str, int]:
    from django.db import connection

    sql = f'SELECT status, count(*) FROM "{schema}".commands_app_command'
    params: list[Any] = []
    if ids is not None:
        sql += " WHERE id = ANY(%s)"
        params.append(list(ids))
    sql += " GROUP BY status"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {status: n for status, n in cursor.fetchall()}


def wait_processed(
    ctx: Context,
    schema: str,
    ids: list[uuid.UUID],
    timeout: float,
    worker: Any,
    label: str,
    soft: bool = False,
) -> tuple[dict[str, int], bool]:
    """Poll until none of `ids` is pending or consumed: (status counts, all final?).

    After `timeout`: raise, or with `soft` return what was reached (a slow system must not
    turn the suite into an hour-long run; the rate is then taken over the cut-off window)."""
    deadline = time.monotonic() + timeout
    last_log = time.monotonic()
    while True:
        counts = status_counts(schema, ids)
        if not sum(counts.get(s, 0) for s in OPEN):
            return counts, True
        if not worker.running():
            raise RuntimeError(f"the worker exited:\n{worker.tail()}")
        if time.monotonic() > deadline:
            if soft:
                return counts, False
            raise RuntimeError(f"{label}: not processed within {timeout:.0f}s: {counts}")
        if time.monotonic() - last_log > 10:
            ctx.log(f"{label}: {counts}")
            last_log = time.monotonic()
        time.sleep(0.05)


def processed_window(schema: str, ids: list[uuid.UUID]) -> tuple[float, float]:
    """(epoch of the first event recorded, epoch of the last command processed); inf if none."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT extract(epoch FROM min(e.recorded_at)) FROM "{schema}".events_app_event e '
            "WHERE e.command_id = ANY(%s)",
            [ids],
        )
        row = cursor.fetchone()
        first = float(row[0]) if row and row[0] is not None else math.inf
        cursor.execute(
            f'SELECT extract(epoch FROM max(processed_at)) FROM "{schema}".commands_app_command '
            "WHERE id = ANY(%s)",
            [ids],
        )
        row = cursor.fetchone()
        last = float(row[0]) if row and row[0] is not None else math.inf
    return first, last


def server_latencies(schema: str, ids: list[uuid.UUID]) -> list[float]:
    """processed_at - created_at per command (seconds), from the database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT extract(epoch FROM processed_at - created_at) FROM "{schema}".commands_app_command '
            "WHERE id = ANY(%s) AND processed_at IS NOT NULL",
            [ids],
        )
        return [float(row[0]) for row in cursor.fetchall()]


def rss_of(pids: list[int]) -> dict[int, float]:
    import psutil

    out = {}
    for pid in pids:
        try:
            out[pid] = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            continue
    return out


def _control(method: str, queue: str, node: str) -> bool:
    from intent_project.celery import app

    replies = getattr(app.control, method)(queue, destination=[node], reply=True, timeout=5.0)
    return bool(replies)


def run_pipeline(ctx: Context) -> list[Result]:
    from commands_app import bus

    n = ctx.n(3000, minimum=150)
    warmup = ctx.n(200, minimum=20)
    tenant = ctx.fresh_tenant("pipe")
    schema = tenant.schema_name
    procs = Processes("pipeline")
    ctx.on_cleanup(lambda: procs.stop(keep_logs=ctx.keep))
    worker = procs.worker("worker", concurrency=2)
    worker.wait_for("ready.", 60)
    ctx.log(f"pipeline: worker ready; warm-up with {warmup} commands")
    warm = store_commands(tenant, warmup, seed=41, enqueue=True)
    wait_processed(ctx, schema, warm, 120, worker, "warm-up")

    node = Processes.node_name("worker")
    paused = _control("cancel_consumer", "commands", node)
    ctx.log(f"pipeline: storing {n} commands (wake-ups suppressed; consumer paused: {paused})")
    t_store = time.perf_counter()
    ids = store_commands(tenant, n, seed=42, enqueue=False)
    store_seconds = time.perf_counter() - t_store
    t_pub = time.perf_counter()
    # The wake-ups the bus would have sent, through the bus: bursts coalesce into one
    # queued drain per tenant, as in production.
    for cid in ids:
        bus.enqueue(schema, cid)
    publish_seconds = time.perf_counter() - t_pub
    if not paused:
        ctx.log("pipeline: remote control did not answer; the messages were consumed while published")
    t0 = time.time()
    if paused:
        _control("add_consumer", "commands", node)
    ctx.log(f"pipeline: {n} commands stored in {store_seconds:.1f}s; processing ...")
    cap = ctx.seconds(60.0, minimum=10.0)
    counts, finished = wait_processed(ctx, schema, ids, cap, worker, "pipeline", soft=True)
    t_seen = time.time()
    memory = rss_of(worker.pids())
    first_event, last_processed = processed_window(schema, ids)
    start = t0 if paused else min(t0, first_event)
    if finished:
        end = last_processed if start < last_processed <= t_seen + 1 else t_seen
        rate = n / (end - start)
    else:
        end = t_seen
        rate = (counts.get("processed", 0) + counts.get("failed", 0)) / (end - start)
    lat = server_latencies(schema, ids)
    ctx.log(f"pipeline: {rate:,.0f} commands/s; worker RSS {max(memory.values(), default=0):.0f} MB max")
    rows = [
        Result(
            name="pipeline_worker_only",
            ours=rate,
            unit="commands/s",
            target=Target("≥ 1,000 commands/s", "ours", ">=", 1000),
            extra={
                "commands": n,
                "warmup_commands": warmup,
                "seconds": round(end - start, 2),
                "statuses": counts,
                "worker": "1 process, --concurrency 2 (prefork)",
                "consumer_paused_while_storing": paused,
                "store_rate_in_process_per_s": round(n / store_seconds, 1),
                "publish_rate_per_s": round(n / publish_seconds, 1),
                "stored_to_processed": latency_summary(lat),
            },
            note="from the worker resuming consumption until the last command is processed",
        ),
        Result(
            name="worker_memory_after_pipeline",
            ours=max(memory.values(), default=None),
            unit="MB RSS",
            target=Target("< 250 MB per worker process", "ours", "<", 250),
            extra={"rss_mb_by_pid": {str(pid): round(mb, 1) for pid, mb in memory.items()}},
            note="max resident set size over the worker's processes (main + 2 pool children)",
        ),
    ]
    if not finished:
        rows[0].note += (
            f"; cut off after {cap:.0f}s with {counts.get('processed', 0)} of {n} processed "
            "(rate over the cut-off window)"
        )
    if counts.get("failed"):
        rows[0].note += f"; {counts['failed']} command(s) failed"
    return rows
