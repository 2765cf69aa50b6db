"""Several statements in one round trip, each parsed and planned once per connection.

Django's psycopg backend binds parameters on the client: every statement reaches
PostgreSQL as new text with its values inlined, to be parsed and planned again. For the
append (a guarded INSERT … SELECT with a dozen casts, then the announcement) that costs
the server more than the insert itself: measured here, the same INSERT ran at 1,044–1,209
per second bound on the client and 1,541–1,889 bound on the server and prepared, as fast
as a bare INSERT. So the append goes through `send()`: psycopg's pipeline
mode, with server-side binding and psycopg's prepared statements, on the connection
Django already has open in the caller's transaction. Still one round trip; the search
path is the one Django's cursor set (PostgreSQL re-plans a prepared statement whenever
the search_path differs from the one it was planned under, so one connection serves
every tenant correctly).

Only statements `send()` is given are prepared: the connection's threshold is set so
high that nothing else ever is (Django's own queries stay as they were).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg.abc import Loader
from psycopg.types.datetime import TimestamptzLoader

# No query reaches this many executions: only the ones asked for (prepare=True) are prepared.
_NEVER = 2**31 - 1

Statement = tuple[str, Sequence[Any] | None]  # SQL with %s placeholders; None: no parameters
# psycopg's own timestamptz loader (its C one where psycopg's binary package is installed).
_C_TIMESTAMPTZ: type[Loader] = (
    psycopg.adapters.get_loader(psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT)
    or TimestamptzLoader
)


def fetch(
    sql: str, params: Sequence[Any], using: str = DEFAULT_DB_ALIAS, *, c_timestamps: bool = False
) -> list[tuple[Any, ...]]:
    """One statement, bound on the server and prepared: its rows. For the statements every
    request or batch sends (the token lookup, a command by its key), in or out of a
    transaction.

    `c_timestamps`: timestamptz columns are parsed by psycopg's C loader, in the session's
    time zone, instead of Django's loader (a Python subclass of psycopg's pure-Python one,
    which then sets Django's tzinfo): for reads of thousands of rows. The caller sets the
    tzinfo it wants (`django.utils.timezone.utc` for what the ORM would return; the
    session's zone is Django's, as Django sets it)."""
    rows = _run([(sql, params)], 0, using, c_timestamps=c_timestamps)
    assert rows is not None
    return rows


def execute(sql: str, params: Sequence[Any], using: str = DEFAULT_DB_ALIAS) -> None:
    """One statement that returns no rows, bound on the server and prepared."""
    _run([(sql, params)], None, using)


def send(
    statements: Sequence[Statement], rows_of: int | None = None, using: str = DEFAULT_DB_ALIAS
) -> list[tuple[Any, ...]]:
    """Send `statements` in one round trip, in order, in the current transaction (outside
    one, each would commit by itself: keep statements that must commit together inside a
    transaction); return the rows of statement `rows_of` (none when None). Database errors
    arrive as Django's (IntegrityError, OperationalError, ...), and the statements show in
    Django's query log (DEBUG, CaptureQueriesContext) as one entry, as a multi-statement
    string would."""
    return _run(statements, rows_of, using) or []


def _run(
    statements: Sequence[Statement], rows_of: int | None, using: str, *, c_timestamps: bool = False
) -> list[tuple[Any, ...]] | None:
    db = connections[using]
    with db.cursor() as django_cursor:  # connects, and sets the tenant's search_path
        raw: psycopg.Connection[Any] = django_cursor.cursor.connection
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _NEVER
        cursors = [psycopg.Cursor(raw) for _ in statements]
        if c_timestamps:
            for cursor in cursors:
                cursor.adapters.register_loader("timestamptz", _C_TIMESTAMPTZ)
        started = time.monotonic()
        try:
            with db.wrap_database_errors:
                if len(statements) == 1:
                    _execute(cursors[0], *statements[0])
                else:
                    with raw.pipeline():
                        for cursor, (sql, params) in zip(cursors, statements, strict=True):
                            _execute(cursor, sql, params)
                return cursors[rows_of].fetchall() if rows_of is not None else None
        finally:
            for cursor in cursors:
                cursor.close()
            if db.queries_logged:
                db.queries_log.append(
                    {
                        "sql": "; ".join(sql for sql, _ in statements),
                        "time": f"{time.monotonic() - started:.3f}",
                    }
                )


def _execute(cursor: psycopg.Cursor[Any], sql: str, params: Sequence[Any] | None) -> None:
    if params is None:
        cursor.execute(sql)  # type: ignore[arg-type]
    else:
        cursor.execute(sql, params, prepare=True)  # type: ignore[arg-type]
