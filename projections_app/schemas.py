"""Working with PostgreSQL schemas beside a tenant's: scratch build schemas and catalogs.

Rebuilds and the drift check both need "the tables exactly as the models define them",
created by Django itself (so column types, constraint and index names are what
migrations produce), in a schema of their own next to the tenant's.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Model

from intent_project.catalog import catalog

__all__ = [
    "catalog",
    "create_schema_with_models",
    "drop_schema",
    "scratch_schema_name",
    "search_path",
    "tenant_models",
]


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
