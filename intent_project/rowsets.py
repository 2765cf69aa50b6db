"""Many rows in one SQL statement, with their columns named and typed by the model's `_meta`.

The hot paths (the event append, the command batch's outcomes) write rows in raw SQL,
because building them through the ORM cost more than the round trips. Their column
lists come from here, so adding a column is one edit to the model and to the code that
fills it, not to hand-written lists in a SQL string. Rows go in one of two encodings,
each one statement:

- `values`: a VALUES list of typed placeholders, cheapest for a few rows;
- `recordset`: the rows as one JSON document (`jsonb_to_recordset`), cheapest for many:
  the driver parses statements and escapes parameters in Python, while one JSON string
  is encoded in C.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, models

from intent_project import jsoncodec
from intent_project.db import pipeline

_UNLIMITED = re.compile(r"\(\d+\)")
Row = Mapping[str, Any]  # column name -> value (jsonb columns take JSON-able values)
# Up to this many rows a statement's placeholders cost less than one JSON document.
VALUES_UP_TO = 8


def _dump(value: Any) -> str:
    return jsoncodec.dumps(value)


@dataclass(frozen=True)
class Columns:
    """Some columns of a model's table, plus any helper columns a statement needs (an
    ordering column, say), each with its SQL type."""

    fields: tuple[models.Field[Any, Any], ...]
    columns: tuple[tuple[str, str], ...]  # (column, SQL type): the fields', then the helpers'

    @classmethod
    def of(
        cls, model: type[models.Model], names: Sequence[str], helpers: Sequence[tuple[str, str]] = ()
    ) -> Columns:
        fields = tuple(model._meta.get_field(name) for name in names)
        assert all(isinstance(f, models.Field) and f.concrete for f in fields), names
        # Without length limits (varchar(64) -> varchar): an explicit cast would silently cut
        # a long value, where the column itself refuses it.
        typed = [(f.column, _UNLIMITED.sub("", str(f.db_type(connection)))) for f in fields]  # type: ignore[union-attr]
        return cls(fields, (*typed, *helpers))  # type: ignore[arg-type]

    def names(self, prefix: str = "") -> str:
        """The fields' columns (not the helpers), quoted and comma-separated."""
        q = connection.ops.quote_name
        return ", ".join(prefix + q(f.column) for f in self.fields)

    def row_of(self, instance: models.Model, *, add: bool = False) -> dict[str, Any]:
        """An instance's values, as saving it would write them (auto_now included; with
        `add`, as inserting it would: auto_now_add too)."""
        return {f.column: f.pre_save(instance, add=add) for f in self.fields}

    @classmethod
    def all_of(cls, model: type[models.Model]) -> Columns:
        """Every concrete column of the model (what inserting a whole row writes)."""
        return cls.of(model, [f.name for f in model._meta.concrete_fields])

    def insert(
        self, instances: Sequence[models.Model], *, ignore_conflicts: bool = False
    ) -> tuple[str, list[Any]]:
        """One INSERT of new instances, each row as inserting it would write it: raw SQL a
        caller can send with other statements in one round trip (the ORM's INSERT cannot
        be). `ignore_conflicts`: ON CONFLICT DO NOTHING, as bulk_create's."""
        q = connection.ops.quote_name
        table = q(self.fields[0].model._meta.db_table)
        rows = [self.row_of(instance, add=True) for instance in instances]
        source, params = self.values(rows) if len(rows) <= VALUES_UP_TO else self.recordset(rows)
        names = self.names()
        conflicts = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        return f"INSERT INTO {table} ({names}) SELECT {names} FROM {source}{conflicts}", params

    def values(self, rows: Sequence[Row]) -> tuple[str, list[Any]]:
        """`(VALUES (...), ...) AS u(...)` and its parameters (a few rows)."""
        q = connection.ops.quote_name
        one = "(" + ", ".join(f"%s::{sql_type}" for _, sql_type in self.columns) + ")"
        # None is SQL NULL, as the ORM writes it (and jsonb_to_recordset reads it), not JSON null.
        params = [
            _dump(row[name]) if sql_type == "jsonb" and row[name] is not None else row[name]
            for row in rows
            for name, sql_type in self.columns
        ]
        aliases = ", ".join(q(name) for name, _ in self.columns)
        return f"(VALUES {', '.join([one] * len(rows))}) AS u({aliases})", params

    def recordset(self, rows: Sequence[Row]) -> tuple[str, list[Any]]:
        """`jsonb_to_recordset(%s::jsonb) AS u(...)` and its one parameter (many rows)."""
        q = connection.ops.quote_name
        typed = ", ".join(f"{q(name)} {sql_type}" for name, sql_type in self.columns)
        return f"jsonb_to_recordset(%s::jsonb) AS u({typed})", [_dump(list(rows))]


class Loader:
    """Rows of a model's concrete fields, read in raw SQL, as instances the way the ORM
    loads them: each value through the field's and the backend's converters (a JSONField's
    decoding, a custom field's from_db_value), then `Model.from_db`. Built lazily, once per
    process: for statements compiled once instead of by the ORM on every call."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self._compiled: tuple[list[str], list[tuple[int, list[Any], Any]]] | None = None

    @property
    def fields(self) -> list[models.Field[Any, Any]]:
        """The columns a row must hold, in this order."""
        return list(self.model._meta.concrete_fields)

    def _compile(self) -> tuple[list[str], list[tuple[int, list[Any], Any]]]:
        if self._compiled is None:
            table = self.model._meta.db_table
            converters = []
            for i, f in enumerate(self.fields):
                col = f.get_col(table)
                found = [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]
                if found:
                    converters.append((i, found, col))
            self._compiled = ([f.attname for f in self.fields], converters)
        return self._compiled

    def instance(self, row: Sequence[Any]) -> Any:
        """The instance of one row's values (its fields' columns, in `fields` order)."""
        attnames, converters = self._compile()
        values = list(row)
        for i, found, col in converters:
            for convert in found:
                values[i] = convert(values[i], col, connection)
        return self.model.from_db(connection.alias, attnames, values)


class ByPrimaryKey:
    """One row of a model by its primary key, loaded as the ORM loads it (`Loader`), from a
    statement built once per process: compiling `Model.objects.filter(pk=...)` costs more
    than the round trip on a hot path (a command's GET, a parked wait's every run)."""

    def __init__(self, model: type[models.Model], lock: str = "") -> None:
        self.model = model
        self.lock = lock  # a locking clause to append, e.g. "FOR UPDATE SKIP LOCKED"
        self._loader = Loader(model)

    @functools.cached_property
    def _sql(self) -> str:
        q = connection.ops.quote_name
        meta = self.model._meta
        return (
            f"SELECT {', '.join(q(f.column) for f in self._loader.fields)} FROM {q(meta.db_table)}"
            f" WHERE {q(meta.pk.column)} = %s {self.lock}"  # type: ignore[union-attr]
        ).rstrip()

    def get(self, pk: Any) -> Any:
        """The instance, or None when no row has this key."""
        key = self.model._meta.pk.get_db_prep_value(pk, connection)  # type: ignore[union-attr]
        rows = pipeline.fetch(self._sql, [key])
        return self._loader.instance(rows[0]) if rows else None
