"""Baselines measured in the same run: raw psycopg inserts and the `eventsourcing` library.

Raw PostgreSQL: psycopg 3 straight into a scratch copy of a tenant's table
(`CREATE TABLE ... (LIKE <tenant table> INCLUDING ALL)`: same columns, types, defaults,
constraints and indexes; triggers are not copied, and ours only fires on UPDATE/DELETE).
Each transaction is `BEGIN; INSERT ...; COMMIT` (executemany for 100 rows).

eventsourcing (PyPI `eventsourcing`, its PostgreSQL persistence, default settings): an
aggregate with the same fields and events as our `system` aggregate, one event per save,
snapshots every 100 events (as ours), in its own schema (POSTGRES_SCHEMA); its
`ProjectionRunner` with a PostgreSQL tracking recorder that upserts a row of the
`system_status` shape and the tracking record in one transaction per event (the library's
documented pattern for materialised views).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.common import Setup, pg_kwargs, stream_ids, zipf_indices

# --------------------------------------------------------------------------- raw psycopg


def raw_copy_table(schema: str, name: str, like: str) -> str:
    """Create `schema.name` shaped like the fully qualified table `like`; returns its name."""
    from django.db import connection

    target = f'"{schema}"."{name}"'
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {target}")
        cursor.execute(f"CREATE TABLE {target} (LIKE {like} INCLUDING ALL)")
    return target


def event_row_template(tenant_schema: str) -> tuple[list[str], list[Any]]:
    """Columns (all but `position`) and database values of one event row as our store writes it.

    Built once with the model's own field preparation (JSON adapters included), so the raw
    rows carry the same payload, metadata and ids; per row only id/stream/version change.
    """
    from django.db import connection
    from django_tenants.utils import schema_context

    from commands_app.slices.system.payloads import MessageLogged
    from events_app.models import Event

    stream = uuid.uuid4()
    event = MessageLogged(text="bench message", level="info", system_id=stream)
    metadata = _metadata()
    row = Event(
        id=uuid.uuid4(),
        stream_type="system",
        stream_id=stream,
        version=1,
        type=event.TYPE,
        schema_version=event.SCHEMA_VERSION,
        payload=event.to_wire(),
        metadata={**metadata, "seq": 1},
        correlation_id=uuid.UUID(metadata["correlation_id"]),
        causation_id=uuid.UUID(metadata["causation_id"]),
        command_id=uuid.UUID(metadata["command_id"]),
        recorded_at=datetime.now(UTC),
    )
    columns, values = [], []
    with schema_context(tenant_schema):
        for f in Event._meta.concrete_fields:
            if f.primary_key:
                continue
            columns.append(f.column)
            values.append(f.get_db_prep_save(getattr(row, f.attname), connection))
    return columns, values


def _metadata() -> dict[str, Any]:
    command = str(uuid.uuid4())
    return {
        "command_id": command,
        "command_type": "logMessage",
        "correlation_id": command,
        "causation_id": command,
        "user_id": "1",
        "role": "admin",
    }


def raw_event_writer(
    table: str,
    columns: list[str],
    template: list[Any],
    rows_per_txn: int,
    seed: int,
    lock: bool = False,
) -> Setup:
    """A writer that inserts `rows_per_txn` event rows per transaction into `table`.

    Streams are Zipf-chosen like ours; versions are unique per writer (a raw insert has no
    decision to make, so it never conflicts).
    """
    import psycopg

    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    i_id, i_stream, i_version = columns.index("id"), columns.index("stream_id"), columns.index("version")

    def setup(index: int) -> tuple[Callable[[], int], Callable[[], None]]:
        conn = psycopg.connect(**pg_kwargs(), autocommit=True)
        cur = conn.cursor()
        streams = stream_ids(seed)
        choices = zipf_indices(seed + index)
        version = [index * 100_000_000]

        def make_row() -> list[Any]:
            row = list(template)
            version[0] += 1
            row[i_id] = uuid.uuid4()
            row[i_stream] = streams[next(choices)]
            row[i_version] = version[0]
            return row

        def step() -> int:
            rows = [make_row() for _ in range(rows_per_txn)]
            with conn.transaction():
                if lock:
                    cur.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
                if rows_per_txn == 1:
                    cur.execute(sql, rows[0])
                else:
                    cur.executemany(sql, rows)
            return 0

        return step, conn.close

    return setup


def raw_insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], per_txn: int) -> float:
    """Insert `rows` with executemany, `per_txn` rows per transaction; returns seconds."""
    import time

    import psycopg

    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    with psycopg.connect(**pg_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        # Warm-up: the first transaction pays for planning and the connection's caches.
        with conn.transaction(force_rollback=True):
            cur.executemany(sql, rows[:per_txn])
        t0 = time.perf_counter()
        for start in range(0, len(rows), per_txn):
            with conn.transaction():
                cur.executemany(sql, rows[start : start + per_txn])
        return time.perf_counter() - t0


# --------------------------------------------------------------------------- eventsourcing


def eventsourcing_available() -> str | None:
    """None when the library is importable, else why not (the rows are then skipped)."""
    try:
        import eventsourcing.postgres  # noqa: F401
    except ImportError as exc:
        return f"eventsourcing[postgres] is not installed ({exc}); `make bench` installs the bench extra"
    return None


def es_version() -> str:
    from importlib.metadata import version

    return version("eventsourcing")


def es_env(schema: str, pool_size: int = 1, create_table: bool = False) -> dict[str, str]:
    kw = pg_kwargs()
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": kw["dbname"],
        "POSTGRES_HOST": kw.get("host", "127.0.0.1"),
        "POSTGRES_PORT": kw.get("port", "5432"),
        "POSTGRES_USER": kw["user"],
        "POSTGRES_PASSWORD": kw.get("password", ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool_size),
        # Tables are created once, before writer processes start (not by each of them).
        "CREATE_TABLE": "yes" if create_table else "no",
    }


def es_classes() -> Any:
    """The library's side of the comparison (bench/es_model.py), imported on demand."""
    import importlib

    return importlib.import_module("bench.es_model")


def es_create_tables(env: dict[str, str]) -> None:
    """The library creates its tables when an application starts with CREATE_TABLE=yes."""
    es_classes().BenchSystems(env).close()


def es_create_aggregates(env: dict[str, str], ids: Sequence[uuid.UUID]) -> None:
    """Every stream exists before the measured run (the library needs a creation event)."""
    model = es_classes()
    app = model.BenchSystems(env)
    try:
        for start in range(0, len(ids), 100):
            app.save(*[model.EsSystem(system_id=sid) for sid in ids[start : start + 100]])
    finally:
        app.close()


def es_writer(schema: str, seed: int, mode: str, events_per_save: int = 1) -> Setup:
    """A writer process on the library.

    mode "memory": aggregates stay in memory (one writer owns them), one save per event;
    mode "redecide": get the aggregate from the repository, decide, save; on a version
    conflict (IntegrityError) get it again and re-decide.
    """

    def setup(index: int) -> tuple[Callable[[], int], Callable[[], None]]:
        from eventsourcing.persistence import IntegrityError

        model = es_classes()
        app = model.BenchSystems(es_env(schema))
        streams = stream_ids(seed)
        choices = zipf_indices(seed + index)
        cache: dict[uuid.UUID, Any] = {}
        if mode == "memory":
            # One writer owns its aggregates: created (and saved) before the measured run.
            created = [model.EsSystem(system_id=sid) for sid in streams]
            for start in range(0, len(created), 100):
                app.save(*created[start : start + 100])
            cache = {agg.id: agg for agg in created}

        def memory_step() -> int:
            sid = streams[next(choices)]
            agg = cache[sid]
            for _ in range(events_per_save):
                agg.log_message(text="bench message", level="info", system_id=sid)
            app.save(agg)
            return 0

        def redecide_step() -> int:
            sid = streams[next(choices)]
            conflicts = 0
            while True:
                agg = app.repository.get(sid)
                agg.log_message(text="bench message", level="info", system_id=sid)
                try:
                    app.save(agg)
                    return conflicts
                except IntegrityError:
                    conflicts += 1

        return (memory_step if mode == "memory" else redecide_step), app.close

    return setup
