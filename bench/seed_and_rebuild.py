"""Seed a tenant with N events and time a rebuild of both system projections (printed)."""

import os
import sys
import time
import uuid
from datetime import UTC, datetime

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

from events_app.models import Event  # noqa: E402
from intent_project.tenants.models import Tenant  # noqa: E402
from intent_project.tenants.services import create_tenant  # noqa: E402
from projections_app.rebuild import rebuild  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
slug = "bench-rebuild"
tenant = Tenant.objects.filter(slug=slug).first() or create_tenant(slug, "bench")
systems = [uuid.uuid4() for _ in range(1000)]
with schema_context(tenant.schema_name):
    if Event.objects.count() < N:
        versions = dict.fromkeys(systems, 0)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        rows = []
        for i in range(N):
            system = systems[i % len(systems)]
            versions[system] += 1
            if i % 5 == 4:
                payload = {"message": f"m{i}", "systemId": str(system)}
                kind = "messageLogged"
            else:
                payload = {
                    "testId": str(uuid.uuid4()),
                    "testName": "bench",
                    "testerId": "1",
                    "result": "success",
                    "executedAt": now.isoformat(),
                    "numberExecutedTests": versions[system],
                    "systemId": str(system),
                }
                kind = "testExecuted"
            rows.append(
                Event(
                    stream_type="system",
                    stream_id=system,
                    version=versions[system],
                    type=kind,
                    payload=payload,
                    metadata={},
                    recorded_at=now,
                )
            )
            if len(rows) == 5000:
                with transaction.atomic():
                    Event.objects.bulk_create(rows)
                rows = []
        if rows:
            Event.objects.bulk_create(rows)
        print(f"seeded {N} events in {time.perf_counter() - t0:.1f}s")
    for name in ("system_status", "system_metrics"):
        t0 = time.perf_counter()
        job = rebuild(name)
        elapsed = time.perf_counter() - t0
        print(
            f"rebuild {name}: {job.events_done} events in {elapsed:.2f}s = {job.events_done / elapsed:,.0f} events/s ({job.status})"
        )

# Baseline in the same run: raw psycopg executemany, 100 rows per transaction, into a table
# of the event table's shape (ENVIRONMENT-NOTES.md's "100 rows per transaction" pattern).
with connection.cursor() as cursor:
    raw = cursor.connection
    cursor.execute("DROP TABLE IF EXISTS public.bench_raw_events")
    cursor.execute(
        "CREATE TABLE public.bench_raw_events (LIKE t_bench_rebuild.events_app_event INCLUDING DEFAULTS)"
    )
    cursor.execute("ALTER TABLE public.bench_raw_events ADD PRIMARY KEY (position)")
rows = [
    (
        i,
        uuid.uuid4(),
        "system",
        systems[i % 1000],
        i,
        "messageLogged",
        1,
        '{"message": "x"}',
        "{}",
        None,
        None,
        None,
        datetime.now(UTC),
    )
    for i in range(1, 20_001)
]
t0 = time.perf_counter()
with raw.cursor() as cur:
    for start in range(0, len(rows), 100):
        with raw.transaction():
            cur.executemany(
                "INSERT INTO public.bench_raw_events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                rows[start : start + 100],
            )
elapsed = time.perf_counter() - t0
print(f"baseline raw executemany, 100 rows/transaction: {len(rows) / elapsed:,.0f} rows/s")
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE public.bench_raw_events")
connection.close()
