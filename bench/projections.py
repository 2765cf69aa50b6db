"""Projection catch-up and rebuild, beside raw executemany and the eventsourcing follower.

Seeding: the events are produced by the slices' own handlers (commands executed on the
in-memory store, so payloads, versions and metadata are exactly what a worker records)
and bulk-inserted into a fresh tenant's log; checkpoints stay at 0.

- catch-up: `run_projection()` batches (PROJECTION_BATCH_SIZE) on the live tables until
  caught up: what a worker does after a backlog.
- rebuild: `projections_app.rebuild.rebuild(name)` (scratch schema, REBUILD_BATCH, swap).
- raw: psycopg executemany, 100 rows per transaction, into a copy of the read model's table
  (same columns, defaults, checks and indexes; unique indexes as plain ones), rows cycled
  from the read model we built, as many rows as the projection applied events.
- eventsourcing (system_status only): the library's ProjectionRunner over the same number
  of events of the same shapes, one transaction per event (upsert + tracking).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from bench import baselines
from bench.common import Context, Result, Target, skipped, stream_ids

# Projections benchmarked, and the commands that feed each (type, payload).
Script = Callable[[int], Iterator[tuple[str, dict[str, Any]]]]


def system_commands(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """One event per command: 4 tests executed for each message logged, over 1,000 systems."""
    systems = stream_ids(71)
    for i in range(n):
        system_id = str(systems[i % len(systems)])
        if i % 5 == 4:
            yield "logMessage", {"message": f"bench message {i}", "systemId": system_id}
        else:
            yield "executeTest", {"testId": str(uuid.uuid4()), "testName": "bench", "systemId": system_id}


def banking_commands(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """1,000 accounts opened, then deposits and withdrawals (never below zero)."""
    accounts = stream_ids(72)
    for opened in accounts[: min(len(accounts), n)]:
        yield "openAccount", {"accountId": str(opened), "owner": "bench", "currency": "EUR"}
    for i in range(max(0, n - len(accounts))):
        account_id = str(accounts[i % len(accounts)])
        if (i // len(accounts)) % 2 == 0:
            yield "depositMoney", {"accountId": account_id, "amount": 1_000}
        else:
            yield "withdrawMoney", {"accountId": account_id, "amount": 500}


CANDIDATES: dict[str, Script] = {"system_status": system_commands, "account_statement": banking_commands}


def seed(tenant: Any, script: Iterator[tuple[str, dict[str, Any]]]) -> int:
    """Execute the commands on the in-memory store, bulk-insert the events they recorded."""
    from django.db import connection, transaction
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from commands_app.domain.errors import IntentError
    from commands_app.domain.messages import CommandContext
    from commands_app.domain.store import InMemoryEventStore, execute
    from commands_app.registry import get_registry
    from events_app.models import Event
    from events_app.personal import Keyring

    registry = get_registry()
    memory = InMemoryEventStore(registry)
    for type_name, payload in script:
        command = registry.parse_command(type_name, payload)
        command_id = uuid.uuid4()
        ctx = CommandContext(
            command_id=command_id,
            tenant=tenant.slug,
            user_id="1",
            role="admin",
            correlation_id=command_id,
            causation_id=None,
            now=timezone.now(),
        )
        try:
            execute(memory, registry, command, ctx)
        except IntentError:
            continue

    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(str(value)) if value else None

    now = datetime.now(UTC)
    rows = [
        Event(
            id=rec.id,
            stream_type=rec.stream_type,
            stream_id=rec.stream_id,
            version=rec.version,
            type=rec.type,
            schema_version=rec.event.SCHEMA_VERSION,
            payload=rec.event.to_wire(),
            metadata=dict(rec.metadata),
            correlation_id=as_uuid(rec.metadata.get("correlation_id")),
            causation_id=as_uuid(rec.metadata.get("causation_id")),
            command_id=as_uuid(rec.metadata.get("command_id")),
            recorded_at=now,
        )
        for rec in memory.read_all()
    ]
    with schema_context(tenant.schema_name):
        # Personal data sealed as the event store would (the projections open it again).
        sealed = Keyring(registry).seal_all("event", [(row.type, row.payload, row.stream_id) for row in rows])
        for row, payload in zip(rows, sealed, strict=True):
            row.payload = payload
        for start in range(0, len(rows), 5000):
            with transaction.atomic():
                Event.objects.bulk_create(rows[start : start + 5000])
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return len(rows)


def catch_up(tenant: Any, name: str) -> tuple[int, float]:
    """Run the live projection from checkpoint 0 to the head; (events applied, seconds)."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from projections_app.registry import get_projection
    from projections_app.runner import run_projection

    projection = get_projection(name)
    assert projection is not None
    applied = 0
    with schema_context(tenant.schema_name):
        t0 = time.perf_counter()
        while True:
            result = run_projection(projection)
            applied += result.applied
            if result.outcome == "failed":
                raise RuntimeError(f"projection {name} failed during catch-up")
            if result.caught_up:
                break
        elapsed = time.perf_counter() - t0
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return applied, elapsed


def rebuild(tenant: Any, name: str) -> tuple[int, float, str]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from projections_app.rebuild import rebuild as rebuild_projection

    with schema_context(tenant.schema_name):
        t0 = time.perf_counter()
        job = rebuild_projection(name)
        elapsed = time.perf_counter() - t0
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return job.events_done, elapsed, str(job.status)


def raw_read_model_rate(ctx: Context, tenant: Any, name: str, rows_wanted: int) -> tuple[float, int]:
    """executemany, 100 rows per transaction, into a copy of the projection's busiest table."""
    import psycopg
    from psycopg.types.json import Jsonb

    from bench.common import pg_kwargs
    from projections_app.registry import get_projection

    projection = get_projection(name)
    assert projection is not None
    model = projection.read_models[0]
    table = model._meta.db_table
    source = f'"{tenant.schema_name}"."{table}"'
    schema = ctx.scratch_schema(f"rm_{name}"[:20])
    target = f'"{schema}"."{table}"'
    with psycopg.connect(**pg_kwargs(), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {target} (LIKE {source} INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING CONSTRAINTS INCLUDING GENERATED)"
        )
        # Every index of the read model (primary key included), non-unique so cycled rows fit.
        for (definition,) in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            [tenant.schema_name, table],
        ).fetchall():
            head, _, tail = definition.partition(" ON ")
            columns_part = tail[tail.index(" USING ") :]
            conn.execute(f"CREATE INDEX ON {target}{columns_part}")
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attidentity = '' AND attgenerated = '' ORDER BY attnum",
                [target],
            ).fetchall()
        ]
        sample = conn.execute(f"SELECT {', '.join(columns)} FROM {source} LIMIT 5000").fetchall()
    if not sample:
        raise RuntimeError(f"the read model of {name} is empty after the rebuild")

    def adapt(value: Any) -> Any:
        return Jsonb(value) if isinstance(value, dict | list) else value

    sample_rows = [[adapt(v) for v in row] for row in sample]
    rows = [sample_rows[i % len(sample_rows)] for i in range(rows_wanted)]
    seconds = baselines.raw_insert_rows(target, columns, rows, 100)
    return len(rows) / seconds, len(rows)


def es_follower_rate(ctx: Context, n_events: int) -> dict[str, Any]:
    """Seed the library's log with `n_events` system events, then time its ProjectionRunner."""
    from eventsourcing.projection import ProjectionRunner

    model = baselines.es_classes()
    schema = ctx.scratch_schema("es_proj")
    env = baselines.es_env(schema, pool_size=4, create_table=True)
    ids = stream_ids(71)
    app = model.BenchSystems(env)
    try:
        aggregates = [model.EsSystem(system_id=sid) for sid in ids]
        for start in range(0, len(aggregates), 100):
            app.save(*aggregates[start : start + 100])
        pending: list[Any] = []
        executed = [0] * len(ids)
        for i in range(n_events):
            k = i % len(ids)
            agg = aggregates[k]
            if i % 5 == 4:
                agg.log_message(text=f"bench message {i}", level="info", system_id=ids[k])
            else:
                executed[k] += 1
                agg.execute_test(
                    test_id=uuid.uuid4(),
                    test_name="bench",
                    tester_id="1",
                    result="success",
                    executed_at=datetime.now(UTC),
                    number_executed_tests=executed[k],
                    system_id=ids[k],
                    parameters=None,
                )
            pending.append(agg)
            if len(pending) == 100:
                app.save(*pending)
                pending = []
        if pending:
            app.save(*pending)
        last = app.recorder.max_notification_id()
    finally:
        app.close()
    t0 = time.perf_counter()
    with ProjectionRunner(
        application_class=model.BenchSystems,
        projection_class=model.EsStatusProjection,
        view_class=model.EsStatusView,
        env=env,
    ) as runner:
        runner.wait(last, timeout=max(120.0, n_events / 50))
        elapsed = time.perf_counter() - t0
        rows = runner.projection.view.count_rows()
    return {"events": n_events, "seconds": elapsed, "rate": n_events / elapsed, "rows": rows}


def run_projections(ctx: Context) -> list[Result]:
    from projections_app.registry import get_projection

    n = ctx.n(30_000, minimum=2000)
    n_es = ctx.n(5_000, minimum=300)
    rows: list[Result] = []
    for name, script in CANDIDATES.items():
        unit = "events/s"
        target_raw = Target("≥ 0.5 × raw executemany", "ratio", ">=", 0.5)
        if get_projection(name) is None:
            note = f"projection '{name}' is not registered (INTENT_PROJECTORS)"
            rows.append(skipped(f"projection_catchup_{name}_vs_raw", unit, target_raw, note))
            rows.append(skipped(f"projection_rebuild_{name}_vs_raw", unit, target_raw, note))
            continue
        tenant = ctx.fresh_tenant(f"proj-{name.split('_')[0]}")
        t0 = time.perf_counter()
        seeded = seed(tenant, script(n))
        ctx.log(f"projection {name}: seeded {seeded} events in {time.perf_counter() - t0:.1f}s; catch-up ...")
        applied, catch_seconds = catch_up(tenant, name)
        catch_rate = applied / catch_seconds
        ctx.log(f"projection {name}: catch-up {catch_rate:,.0f} events/s; rebuild ...")
        done, rebuild_seconds, status = rebuild(tenant, name)
        rebuild_rate = done / rebuild_seconds
        ctx.log(f"projection {name}: rebuild {rebuild_rate:,.0f} events/s ({status}); raw ...")
        raw_rate, raw_rows = raw_read_model_rate(ctx, tenant, name, max(done, 1000))
        ctx.log(f"projection {name}: raw executemany {raw_rate:,.0f} rows/s")
        sizes = {"events_in_log": seeded, "events_of_projection": done}
        raw_name = f"raw psycopg executemany, 100 rows per transaction, into a copy of {name}'s table"
        rows.append(
            Result(
                name=f"projection_catchup_{name}_vs_raw",
                ours=catch_rate,
                baseline=raw_rate,
                baseline_name=raw_name,
                unit=unit,
                target=target_raw,
                extra={**sizes, "applied": applied, "seconds": round(catch_seconds, 2), "raw_rows": raw_rows},
                note="run_projection() batches on the live tables (PROJECTION_BATCH_SIZE)",
            )
        )
        rows.append(
            Result(
                name=f"projection_rebuild_{name}_vs_raw",
                ours=rebuild_rate,
                baseline=raw_rate,
                baseline_name=raw_name,
                unit=unit,
                target=target_raw,
                extra={**sizes, "seconds": round(rebuild_seconds, 2), "status": status, "raw_rows": raw_rows},
                note="projections_app.rebuild.rebuild(): scratch schema, replay, swap",
            )
        )
        if name == "system_status":
            target_es = Target("≥ 1.0 × eventsourcing follower", "ratio", ">=", 1.0)
            why = baselines.eventsourcing_available()
            if why:
                rows.append(
                    skipped("projection_rebuild_system_status_vs_eventsourcing", unit, target_es, why)
                )
                continue
            ctx.log(f"projection {name}: eventsourcing follower over {n_es} events ...")
            es = es_follower_rate(ctx, n_es)
            ctx.log(f"projection {name}: eventsourcing follower {es['rate']:,.0f} events/s")
            rows.append(
                Result(
                    name="projection_rebuild_system_status_vs_eventsourcing",
                    ours=rebuild_rate,
                    baseline=es["rate"],
                    baseline_name=(
                        f"eventsourcing {baselines.es_version()} ProjectionRunner, "
                        "one transaction per event (upsert + tracking)"
                    ),
                    unit=unit,
                    target=target_es,
                    extra={
                        "eventsourcing_events": es["events"],
                        "eventsourcing_seconds": round(es["seconds"], 2),
                        "eventsourcing_rows": es["rows"],
                        "catchup_vs_eventsourcing": round(catch_rate / es["rate"], 3),
                    },
                )
            )
    return rows
