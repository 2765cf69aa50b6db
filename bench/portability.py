"""Tenant export and import (intent_project/tenants/portable.py) beside raw COPY.

1. seed: N `messageLogged` events in 1,000 streams of a fresh tenant, loaded with COPY.
2. export: `export_tenant` to a file: events per second.
3. import: `import_tenant` of that file as a new tenant (read once, every line checked,
   COPY, committed): events per second, beside
4. raw: psycopg COPY of the same rows into a copy of the events table in the same run.
   Target: import ≥ 0.5 × raw COPY (the issue's).
5. the projections built from the imported log after commit (what `import_tenant` does
   next), reported with the import as the whole command's rate.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Context, Result, Target

EVENTS = 100_000
STREAMS = 1_000


def _seed_rows(count: int) -> list[dict[str, object]]:
    streams = [uuid.uuid4() for _ in range(STREAMS)]
    versions = [0] * STREAMS
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    for position in range(1, count + 1):
        index = position % STREAMS
        versions[index] += 1
        rows.append(
            {
                "position": position,
                "id": str(uuid.uuid4()),
                "stream_type": "system",
                "stream_id": str(streams[index]),
                "version": versions[index],
                "type": "messageLogged",
                "schema_version": 3,
                "payload": json.dumps({"text": f"message {position}", "level": "info"}),
                "metadata": "{}",
                "recorded_at": now,
            }
        )
    return rows


def _copy(table: str, rows: list[dict[str, object]]) -> float:
    from django.db import connection, transaction

    from events_app.models import Event

    columns = [field.column for field in Event._meta.concrete_fields]  # the event table's, in order
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(column) for column in columns])
    return time.perf_counter() - start


def run_portability(ctx: Context) -> list[Result]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from intent_project.tenants.portable import build_projections, export_tenant, import_tenant

    count = ctx.n(EVENTS, minimum=1_000)
    source = ctx.fresh_tenant("export")
    rows = _seed_rows(count)
    with schema_context(source.schema_name):
        _copy("events_app_event", rows)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('events_app_event', 'position'), %s)", [count]
            )
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    ctx.log(f"portability: {count:,} events seeded; exporting")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.jsonl.gz"
        start = time.perf_counter()
        with path.open("wb") as out:
            export_tenant(source, out)
        export_seconds = time.perf_counter() - start
        size = path.stat().st_size
        ctx.log(f"portability: exported in {export_seconds:.2f} s ({size / 1e6:.1f} MB); importing")

        slug = f"{source.slug[:30]}-in"
        start = time.perf_counter()
        imported = import_tenant(path, slug, build=False)
        import_seconds = time.perf_counter() - start
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        ctx.tenants.append(imported)
        start = time.perf_counter()
        with schema_context(imported.schema_name):
            build_projections(count)
        build_seconds = time.perf_counter() - start
        connection.set_schema_to_public()  # type: ignore[attr-defined]

    scratch = ctx.scratch_schema("copy")
    with connection.cursor() as cursor:
        cursor.execute(
            f'CREATE TABLE "{scratch}".events (LIKE "{source.schema_name}".events_app_event INCLUDING ALL)'
        )
    raw_seconds = _copy(f'"{scratch}".events', rows)
    ctx.log(
        f"portability: import {import_seconds:.2f} s (+ {build_seconds:.2f} s building projections), "
        f"raw COPY {raw_seconds:.2f} s"
    )

    shape = {"events": count, "streams": STREAMS, "file_bytes": size}
    return [
        Result(
            name="tenant_import_vs_raw_copy",
            ours=count / import_seconds,
            baseline=count / raw_seconds,
            baseline_name="psycopg COPY of the same rows into a copy of the events table, same run",
            unit="events/s",
            target=Target("≥ 0.5 × raw COPY", "ratio", ">=", 0.5),
            extra=shape,
            note="import_tenant up to its commit: the file read once, every line checked, every "
            "section COPYed, the tenant created, in one transaction",
        ),
        Result(
            name="tenant_import_with_projections",
            ours=count / (import_seconds + build_seconds),
            baseline=None,
            baseline_name="",
            unit="events/s",
            target=None,
            extra={
                **shape,
                "import_seconds": round(import_seconds, 2),
                "build_seconds": round(build_seconds, 2),
            },
            note="the whole import_tenant command: the import, then its projections built from the log "
            "(system_status and system_metrics here)",
        ),
        Result(
            name="tenant_export",
            ours=count / export_seconds,
            baseline=None,
            baseline_name="",
            unit="events/s",
            target=None,
            extra=shape,
            note="export_tenant: one REPEATABLE READ snapshot, server-side cursors, gzip JSON lines",
        ),
    ]
