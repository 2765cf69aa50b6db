"""Aggregate load with snapshots: a stream of 10 events vs a stream of 10,000.

Both streams are `System` aggregates in a fresh tenant, appended through
`PostgresEventStore(registry, snapshot_every=100)`. The history of the long streams is
bulk-inserted (INSERT ... SELECT) up to version 9,900; the rest is appended through the
store in appends of 100, so the store writes the snapshots itself: the newest snapshot of
the 10,000-event stream is at its head, as after any appends ending on a multiple of 100. `load()` is timed many times, alternating the two streams; the ratio is
mean(load 10,000) / mean(load 10). Also measured: a stream of 10,099 events (the newest
snapshot 99 events behind its head, the worst case of this interval) and a 10,000-event
stream appended with snapshots off (what snapshots save).
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from bench.common import Context, Result, Target, latency_summary

SNAPSHOT_EVERY = 100


def _append(store: Any, aggregate: Any, count: int, chunk: int) -> None:
    """Append `count` MessageLogged events through the store, `chunk` per transaction."""
    from django.db import transaction

    from commands_app.slices.system.payloads import MessageLogged

    metadata = {"command_id": str(uuid.uuid4()), "command_type": "logMessage"}
    left = count
    while left:
        size = min(chunk, left)
        with transaction.atomic():
            store.append(
                aggregate,
                [
                    MessageLogged(text="bench message", level="info", system_id=aggregate.id)
                    for _ in range(size)
                ],
                metadata,
            )
        left -= size


def _bulk_events(stream_id: uuid.UUID, count: int) -> None:
    """`count` MessageLogged events (versions 1..count) in one INSERT ... SELECT: the bulk of
    a long stream is only history to load; how it was appended does not matter."""
    import json

    from django.db import connection

    from commands_app.slices.system.payloads import MessageLogged
    from events_app.models import Event

    event = MessageLogged(text="bench message", level="info", system_id=stream_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} "
            "(id, stream_type, stream_id, version, type, schema_version, payload, metadata, recorded_at) "
            "SELECT gen_random_uuid(), 'system', %s, v, %s, %s, %s::jsonb, '{}'::jsonb, now() "
            "FROM generate_series(1, %s) AS v",
            [stream_id, event.TYPE, event.SCHEMA_VERSION, json.dumps(event.to_wire()), count],
        )


def _stream(store: Any, stream_id: uuid.UUID, length: int, snapshots: bool) -> None:
    """A System stream of `length` events. With `snapshots`, everything from version 9,901 on
    goes through `store.append` in appends of 100, so the store itself writes the snapshots
    (the newest at 10,000 for a 10,000- or 10,099-event stream)."""
    from commands_app.slices.system.aggregate import System

    head = 0
    if length > 200:
        head = (length // SNAPSHOT_EVERY - 1) * SNAPSHOT_EVERY if snapshots else length
        _bulk_events(stream_id, head)
    if head < length:
        aggregate = store.load(System, stream_id) if head else System(id=stream_id)
        _append(store, aggregate, length - head, SNAPSHOT_EVERY)


def run_loads(ctx: Context) -> list[Result]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from commands_app.registry import get_registry
    from commands_app.slices.system.aggregate import System
    from events_app.store import PostgresEventStore

    reps = ctx.n(1000, minimum=100)
    warmup = 20
    tenant = ctx.fresh_tenant("load")
    registry = get_registry()
    store = PostgresEventStore(registry, snapshot_every=SNAPSHOT_EVERY)
    plain = PostgresEventStore(registry, snapshot_every=0)
    streams = {
        "short": (uuid.uuid4(), 10),
        "long": (uuid.uuid4(), 10_000),
        "long_tail": (uuid.uuid4(), 10_099),
    }
    unsnapshotted = uuid.uuid4()
    with schema_context(tenant.schema_name):
        t0 = time.perf_counter()
        for sid, length in streams.values():
            _stream(store, sid, length, snapshots=True)
        _stream(plain, unsnapshotted, 10_000, snapshots=False)
        ctx.log(
            f"load: seeded {sum(n for _, n in streams.values()) + 10_000} events in {time.perf_counter() - t0:.1f}s"
        )
        for sid, length in streams.values():
            assert store.load(System, sid).version == length
        timings: dict[str, list[float]] = {key: [] for key in streams}
        for _ in range(warmup):
            for sid, _length in streams.values():
                store.load(System, sid)
        for _ in range(reps):
            for key, (sid, _length) in streams.items():
                start = time.perf_counter()
                store.load(System, sid)
                timings[key].append(time.perf_counter() - start)
        # Without snapshots: a full replay of 10,000 events (a few repetitions suffice).
        no_snapshot = []
        for _ in range(max(3, reps // 100)):
            start = time.perf_counter()
            store.load(System, unsnapshotted)
            no_snapshot.append(time.perf_counter() - start)
    connection.set_schema_to_public()  # type: ignore[attr-defined]

    mean = {key: statistics.fmean(values) for key, values in timings.items()}
    ctx.log(
        f"load: 10 events {mean['short'] * 1000:.2f} ms, 10,000 events {mean['long'] * 1000:.2f} ms, "
        f"ratio {mean['long'] / mean['short']:.2f}"
    )
    return [
        Result(
            name="aggregate_load_10k_vs_10_with_snapshots",
            ours=mean["long"] * 1000,
            baseline=mean["short"] * 1000,
            baseline_name="load() of a 10-event stream (no snapshot)",
            unit="ms per load",
            target=Target("ratio ≤ 1.5", "ratio", "<=", 1.5),
            extra={
                "repetitions": reps,
                "snapshot_every": SNAPSHOT_EVERY,
                "load_10": latency_summary(timings["short"]),
                "load_10000": latency_summary(timings["long"]),
                "load_10099_snapshot_99_behind": latency_summary(timings["long_tail"]),
                "ratio_10099_vs_10": round(mean["long_tail"] / mean["short"], 3),
                "load_10000_without_snapshots_ms": round(statistics.fmean(no_snapshot) * 1000, 2),
            },
        )
    ]
