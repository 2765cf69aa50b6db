"""The comparable shape of a PostgreSQL schema's tables: columns, indexes, triggers.

Shared by the read side's drift check (projections_app.drift, against a reference schema
built from the models) and the tenant template copy's self-check (tenants/template.py);
it lives here, outside both, so the tenant services need not import the read side.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection

_INDEX_NAME = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+\.(\S+) ")


def catalog(schema: str) -> dict[str, dict[str, Any]]:
    """Tables of `schema` with their columns (type, nullability, default), index
    definitions and triggers. Names that embed the schema are normalised away, so two
    schemas built the same way have equal catalogs."""
    tables: dict[str, dict[str, Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
            """,
            [schema],
        )
        for table, column, type_name, not_null in cursor.fetchall():
            entry = tables.setdefault(table, {"columns": {}, "indexes": {}, "triggers": set()})
            entry["columns"][column] = (type_name, bool(not_null))
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [schema]
        )
        for table, index_name, definition in cursor.fetchall():
            if table in tables:
                # Compare definitions without the index and schema names.
                shape = _INDEX_NAME.sub(
                    lambda m: f"CREATE {m.group(1) or ''}INDEX ON {m.group(2)} ", definition
                )
                tables[table]["indexes"][shape] = index_name
        cursor.execute(
            """
            SELECT c.relname, t.tgname
              FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s AND NOT t.tgisinternal
            """,
            [schema],
        )
        for table, trigger in cursor.fetchall():
            if table in tables:
                tables[table]["triggers"].add(trigger)
    return tables
