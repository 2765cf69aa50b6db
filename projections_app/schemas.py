"""Working with PostgreSQL schemas beside a tenant's: scratch build schemas and catalogs.

Rebuilds and the drift check both need "the tables exactly as the models define them",
created by Django itself (so column types, constraint and index names are what
migrations produce), in a schema of their own next to the tenant's.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Model


def scratch_schema_name(*parts: str) -> str:
    """A short, valid, deterministic schema name (PostgreSQL identifiers stop at 63 bytes)."""
    return "intent_rb_" + hashlib.sha1(":".join(parts).encode()).hexdigest()[:16]


def tenant_models() -> list[type[Model]]:
    """Every concrete model whose table lives in each tenant schema."""
    labels = {app.split(".")[-1] for app in settings.TENANT_APPS}
    return [
        model
        for model in apps.get_models()
        if model._meta.app_label in labels and model._meta.managed and not model._meta.proxy
    ]


@contextlib.contextmanager
def search_path(*schemas: str) -> Iterator[None]:
    """Resolve unqualified table names through `schemas` (then public) inside the block.

    django-tenants issues `SET search_path` from its own notion of the current schema; we
    widen that notion for the block, so ORM code (projection handlers included) reads and
    writes the first schema that has the table, with no change to that code.
    """
    previous = connection.__dict__.get("_get_cursor_search_paths")
    paths = [*schemas, "public"]
    connection._get_cursor_search_paths = lambda: paths  # type: ignore[attr-defined]
    connection.search_path_set_schemas = None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if previous is None:
            del connection._get_cursor_search_paths  # type: ignore[attr-defined]
        else:
            connection._get_cursor_search_paths = previous  # type: ignore[attr-defined]
        connection.search_path_set_schemas = None  # type: ignore[attr-defined]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def create_schema_with_models(schema: str, models: Iterable[type[Model]]) -> None:
    """(Re)create `schema` holding empty tables for `models`, exactly as migrations would."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
        cursor.execute(f"CREATE SCHEMA {quote(schema)}")
    with search_path(schema), connection.schema_editor(atomic=False) as editor:
        for model in models:
            editor.create_model(model)


def drop_schema(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")


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
