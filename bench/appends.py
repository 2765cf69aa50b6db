"""Appends: 1 writer x 1 event, 8 writers over Zipf streams re-deciding on conflict, 100 events.

Ours: `PostgresEventStore.append` inside `transaction.atomic()` in a fresh tenant's schema,
the `system` slice's `System` aggregate and `MessageLogged` events, snapshots at the
configured interval (SNAPSHOT_EVERY, 100 by default). Writers are forked processes.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import baselines
from bench.common import (
    Context,
    Result,
    Setup,
    Target,
    WriterRun,
    latency_summary,
    run_writers,
    skipped,
    stream_ids,
    zipf_indices,
)

WRITERS = 8


def ours_writer(schema: str, tenant_slug: str, seed: int, mode: str, events_per_txn: int = 1) -> Setup:
    """mode "memory": append to aggregates held in memory (the writer owns its streams);
    mode "redecide": the command path `execute()` (load with snapshot, decide, append) in
    one transaction, reloading and re-deciding on ConcurrencyError."""

    def setup(index: int) -> tuple[Callable[[], int], Callable[[], None]]:
        from django.db import connection, transaction
        from django.utils import timezone
        from django_tenants.utils import schema_context

        from commands_app.domain.errors import ConcurrencyError
        from commands_app.domain.messages import CommandContext
        from commands_app.domain.store import execute
        from commands_app.registry import get_registry
        from commands_app.slices.system.aggregate import System
        from commands_app.slices.system.payloads import LogMessage, MessageLogged
        from events_app.store import PostgresEventStore

        scope = schema_context(schema)
        scope.__enter__()
        registry = get_registry()
        store = PostgresEventStore(registry)
        streams = stream_ids(seed)
        choices = zipf_indices(seed + index)
        aggregates = {sid: System(id=sid) for sid in streams}

        def metadata() -> dict[str, Any]:
            command = str(uuid.uuid4())
            return {
                "command_id": command,
                "command_type": "logMessage",
                "correlation_id": command,
                "causation_id": command,
                "user_id": "1",
                "role": "admin",
            }

        def memory_step() -> int:
            aggregate = aggregates[streams[next(choices)]]
            events = [
                MessageLogged(text="bench message", level="info", system_id=aggregate.id)
                for _ in range(events_per_txn)
            ]
            with transaction.atomic():
                store.append(aggregate, events, metadata())
            return 0

        def redecide_step() -> int:
            sid = streams[next(choices)]
            command = LogMessage(message="bench message", system_id=sid)
            command_id = uuid.uuid4()
            ctx = CommandContext(
                command_id=command_id,
                tenant=tenant_slug,
                user_id="1",
                role="admin",
                correlation_id=command_id,
                causation_id=None,
                now=timezone.now(),
            )
            conflicts = 0
            while True:
                try:
                    with transaction.atomic():
                        execute(store, registry, command, ctx)
                    return conflicts
                except ConcurrencyError:
                    conflicts += 1

        def teardown() -> None:
            scope.__exit__(None, None, None)
            connection.close()

        return (memory_step if mode == "memory" else redecide_step), teardown

    return setup


MAX_ROUNDS = 3  # ours and its baselines alternate, round by round; the median round counts


@dataclass
class Rounds:
    """One workload measured over several rounds (interleaved with its baselines)."""

    runs: list[WriterRun] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    def summary(self, per_op: int) -> dict[str, Any]:
        return {
            "processes": self.runs[0].processes,
            "rounds": len(self.runs),
            "rate_per_round": [round(run.rate * per_op, 1) for run in self.runs],
            "transactions": sum(run.ops for run in self.runs),
            "events": sum(run.ops for run in self.runs) * per_op,
            "seconds": round(sum(run.elapsed for run in self.runs), 2),
            "conflicts_redecided": sum(run.conflicts for run in self.runs),
            "latency_per_transaction": latency_summary([x for run in self.runs for x in run.latencies]),
        }


class Appends:
    """Runs the append workloads; each `run_*` returns the rows of one benchmark.

    This machine is shared and its load drifts, so ours and the baselines run in
    alternation: up to MAX_ROUNDS rounds (scaled) of (ours, raw, eventsourcing), every round on fresh streams;
    each figure is the median of its rounds.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.duration = ctx.seconds(2.0, minimum=0.3)
        self.warmup = max(5, ctx.n(50))
        self.es_missing = baselines.eventsourcing_available()
        self.rounds = max(1, min(MAX_ROUNDS, round(ctx.scale * MAX_ROUNDS)))
        self._shape = ""  # the tenant schema whose event table the raw copies mimic

    def _measure(
        self, workloads: dict[str, Callable[[int], WriterRun]], per_op: int = 1
    ) -> dict[str, Rounds]:
        results = {name: Rounds() for name in workloads}
        for r in range(self.rounds):
            for name, workload in workloads.items():
                run = workload(r)
                results[name].runs.append(run)
                self.ctx.log(
                    f"  round {r + 1}/{self.rounds} {name}: {run.rate:,.0f}/s, {run.conflicts} conflicts"
                )
        return results

    def _ours(
        self, purpose: str, mode: str, writers: int, per_txn: int, seed: int
    ) -> Callable[[int], WriterRun]:
        tenant = self.ctx.fresh_tenant(purpose)

        def workload(r: int) -> WriterRun:
            setup = ours_writer(tenant.schema_name, tenant.slug, seed + 1000 * r, mode, per_txn)
            return run_writers(setup, writers, self.duration, self.warmup)

        self._shape = tenant.schema_name
        return workload

    def _raw(
        self, purpose: str, writers: int, per_txn: int, seed: int, lock: bool = False
    ) -> Callable[[int], WriterRun]:
        schema = self.ctx.scratch_schema(f"raw_{purpose}")
        table = baselines.raw_copy_table(schema, "events", f'"{self._shape}"."events_app_event"')
        columns, template = baselines.event_row_template(self._shape)

        def workload(r: int) -> WriterRun:
            setup = baselines.raw_event_writer(table, columns, template, per_txn, seed + 1000 * r, lock=lock)
            return run_writers(setup, writers, self.duration, self.warmup)

        return workload

    def _es(
        self, purpose: str, mode: str, writers: int, seed: int, per_save: int = 1
    ) -> Callable[[int], WriterRun]:
        schema = self.ctx.scratch_schema(f"es_{purpose}")
        env = baselines.es_env(schema, create_table=True)

        if mode == "memory":  # the writer creates its own aggregates (see es_writer)
            baselines.es_create_tables(env)

        def workload(r: int) -> WriterRun:
            if mode != "memory":
                baselines.es_create_aggregates(env, stream_ids(seed + 1000 * r))
            setup = baselines.es_writer(schema, seed + 1000 * r, mode, per_save)
            return run_writers(setup, writers, self.duration, self.warmup)

        return workload

    # benchmarks ------------------------------------------------------------------------
    def run_single(self) -> list[Result]:
        """append, 1 writer, 1 event per transaction."""
        self.ctx.log(
            f"append x1: {self.rounds} round(s) of {self.duration:.1f}s each: ours, raw, eventsourcing"
        )
        workloads = {"ours": self._ours("a1", "memory", 1, 1, seed=11), "raw": self._raw("a1", 1, 1, seed=11)}
        if not self.es_missing:
            workloads["eventsourcing"] = self._es("a1", "memory", 1, seed=11)
        m = self._measure(workloads)
        ours = m["ours"]
        rows = [
            Result(
                name="append_1_writer_vs_raw",
                ours=ours.rate,
                baseline=m["raw"].rate,
                baseline_name="raw psycopg INSERT, 1 row per transaction",
                unit="events/s",
                target=Target("≥ 0.7 × raw", "ratio", ">=", 0.7),
                extra={"ours": ours.summary(1), "raw": m["raw"].summary(1)},
                note="ours: append() to aggregates held in memory (no load)",
            )
        ]
        target = Target("≥ 1.0 × eventsourcing", "ratio", ">=", 1.0)
        if self.es_missing:
            rows.append(skipped("append_1_writer_vs_eventsourcing", "events/s", target, self.es_missing))
            return rows
        rows.append(
            Result(
                name="append_1_writer_vs_eventsourcing",
                ours=ours.rate,
                baseline=m["eventsourcing"].rate,
                baseline_name=f"eventsourcing {baselines.es_version()}, one event per save (aggregates in memory)",
                unit="events/s",
                target=target,
                extra={"eventsourcing": m["eventsourcing"].summary(1)},
            )
        )
        return rows

    def run_concurrent(self) -> list[Result]:
        """append, 8 writers, Zipf over 1,000 aggregates, conflicts re-decided."""
        self.ctx.log(
            f"append x{WRITERS} zipf: {self.rounds} round(s) of {self.duration:.1f}s each: "
            "ours (load, decide, append), raw, raw + table lock, eventsourcing (get, decide, save)"
        )
        workloads = {
            "ours": self._ours("a8", "redecide", WRITERS, 1, seed=22),
            "raw": self._raw("a8", WRITERS, 1, seed=22),
            "raw_locked": self._raw("a8l", WRITERS, 1, seed=22, lock=True),
        }
        if not self.es_missing:
            workloads["eventsourcing"] = self._es("a8", "redecide", WRITERS, seed=22)
        m = self._measure(workloads)
        ours = m["ours"]
        rows = [
            Result(
                name=f"append_{WRITERS}_writers_zipf_vs_raw",
                ours=ours.rate,
                baseline=m["raw"].rate,
                baseline_name=f"raw psycopg INSERT, 1 row per transaction, {WRITERS} processes",
                unit="events/s",
                target=Target(f"≥ 0.6 × raw at {WRITERS} clients", "ratio", ">=", 0.6),
                extra={
                    "ours": ours.summary(1),
                    "raw": m["raw"].summary(1),
                    "raw_with_exclusive_table_lock": m["raw_locked"].summary(1),
                    "raw_with_exclusive_table_lock_rate": round(m["raw_locked"].rate, 1),
                },
                note="ours: execute() = load (snapshot + events), decide, append, in one transaction",
            )
        ]
        target = Target("≥ 2.0 × eventsourcing", "ratio", ">=", 2.0)  # issue 18 (1.5 before)
        if self.es_missing:
            rows.append(
                skipped(
                    f"append_{WRITERS}_writers_zipf_vs_eventsourcing", "events/s", target, self.es_missing
                )
            )
            return rows
        rows.append(
            Result(
                name=f"append_{WRITERS}_writers_zipf_vs_eventsourcing",
                ours=ours.rate,
                baseline=m["eventsourcing"].rate,
                baseline_name=f"eventsourcing {baselines.es_version()}, get/decide/save, {WRITERS} processes",
                unit="events/s",
                target=target,
                extra={"eventsourcing": m["eventsourcing"].summary(1)},
            )
        )
        return rows

    def run_batch(self) -> list[Result]:
        """append, 100 events per transaction."""
        self.ctx.log(
            f"append 100/txn: {self.rounds} round(s) of {self.duration:.1f}s each: ours, raw executemany"
        )
        workloads = {
            "ours": self._ours("a100", "memory", 1, 100, seed=33),
            "raw": self._raw("a100", 1, 100, seed=33),
        }
        if not self.es_missing:
            workloads["eventsourcing"] = self._es("a100", "memory", 1, seed=33, per_save=100)
        m = self._measure(workloads, per_op=100)
        extra: dict[str, Any] = {"ours": m["ours"].summary(100), "raw": m["raw"].summary(100)}
        if "eventsourcing" in m:
            extra["eventsourcing_100_per_save_events_per_s"] = round(m["eventsourcing"].rate * 100, 1)
        from commands_app.slices.system.aggregate import System
        from events_app.store import snapshot_interval

        every = snapshot_interval(System)
        return [
            Result(
                name="append_100_per_txn_vs_raw_executemany",
                ours=m["ours"].rate * 100,
                baseline=m["raw"].rate * 100,
                baseline_name="raw psycopg executemany, 100 rows per transaction",
                unit="events/s",
                target=Target("≥ 0.7 × raw executemany", "ratio", ">=", 0.7),
                extra=extra,
                note=(
                    f"snapshot interval of `system` = {every}: each append of 100 crosses it and also writes a snapshot"
                    if 0 < every <= 100
                    else f"snapshot interval of `system` = {every}"
                ),
            )
        ]
