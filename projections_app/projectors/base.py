"""What a projection declares: name, version, read models, and event -> row handlers.

Handlers do not talk to the database. They read and change rows through a `Batch`, which
the runner fills with one query per read model for the whole batch of events (the keys
come from the projection's `keys`) and writes back with one upsert per read model, in the
same transaction as the checkpoint. That keeps a rebuild at a few statements per
thousand events instead of two per event.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from django.db import InterfaceError, OperationalError, connections, models
from django.db.models import Q

from commands_app.domain.messages import DomainEvent, Recorded
from intent_project import jsoncodec
from intent_project.db import pipeline

M = TypeVar("M", bound=models.Model)


class HandlerFailed(Exception):
    """A handler raised on `recorded`; the runner reports that event as the failing one."""

    def __init__(self, recorded: Recorded[Any], cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.recorded = recorded
        self.cause = cause


class Batch:
    """The read-model rows one batch of events touches, cached and written back together."""

    def __init__(self) -> None:
        self._rows: dict[type[models.Model], dict[Any, models.Model | None]] = {}
        self._dirty: dict[type[models.Model], dict[Any, models.Model]] = {}
        self._deleted: dict[type[models.Model], set[Any]] = {}

    def load(self, model: type[models.Model], keys: Iterable[Any]) -> None:
        """Fetch the rows with these primary keys (one query); absent keys are remembered."""
        cache = self._rows.setdefault(model, {})
        missing = {key for key in keys if key not in cache}
        if not missing:
            return
        for row in model._default_manager.filter(pk__in=missing):
            cache[row.pk] = row
        for key in missing:
            cache.setdefault(key, None)

    def get(self, model: type[M], key: Any) -> M | None:
        cache = self._rows.setdefault(model, {})
        if key not in cache:
            self.load(model, [key])
        return cache[key]  # type: ignore[return-value]

    def put(self, row: models.Model) -> None:
        model = type(row)
        self._rows.setdefault(model, {})[row.pk] = row
        self._dirty.setdefault(model, {})[row.pk] = row
        self._deleted.get(model, set()).discard(row.pk)

    def delete(self, model: type[models.Model], key: Any) -> None:
        self._rows.setdefault(model, {})[key] = None
        self._dirty.get(model, {}).pop(key, None)
        self._deleted.setdefault(model, set()).add(key)

    def flush(self) -> None:
        for model, keys in self._deleted.items():
            if keys:
                model._default_manager.filter(pk__in=keys).delete()
        for model, rows in self._dirty.items():
            if rows:
                upsert(model, list(rows.values()))
        self._dirty.clear()
        self._deleted.clear()


def upsert(model: type[models.Model], rows: list[models.Model]) -> None:
    """One INSERT ... ON CONFLICT (pk) DO UPDATE for all `rows`, sent as one JSON document.

    Django's bulk_create sends a VALUES list with a placeholder per field and row, which the
    driver parses and Django prepares value by value: for a few hundred rows that cost more
    than the statement itself. jsonb_to_recordset() turns one parameter into the rows.
    """
    db = connections[model._default_manager.db]  # the real wrapper: `connection` is a proxy
    fields = list(model._meta.concrete_fields)
    types = [f.db_type(db) for f in fields]
    if any(t is None or t.endswith("]") for t in types):  # keep arrays on the ORM path
        model._default_manager.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=[model._meta.pk.name],
            update_fields=[f.name for f in fields if not f.primary_key],
        )
        return
    # The rows as one JSON document: one parameter, encoded in C (arrays of text would be
    # escaped element by element in Python by the driver).
    plain, special = _columns(model)
    document = jsoncodec.dumps(
        [
            {
                **{column: getattr(row, attname) for column, attname in plain},
                **{f.column: f.pre_save(row, add=True) for f in special},
            }
            for row in rows
        ]
    )
    quote = db.ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    record = ", ".join(f"{quote(f.column)} {t}" for f, t in zip(fields, types, strict=True))
    updates = ", ".join(
        f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in fields if not f.primary_key
    )
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    # Prepared (intent_project/db/pipeline.py): one text per model, the rows its parameter.
    pipeline.execute(
        f"INSERT INTO {quote(model._meta.db_table)} ({names})"
        f" SELECT {names} FROM jsonb_to_recordset(%s::jsonb) AS u({record})"
        f" ON CONFLICT ({quote(model._meta.pk.column)}) {conflict}",
        [document],
        using=db.alias,
    )


@functools.cache
def _columns(model: type[models.Model]) -> tuple[tuple[tuple[str, str], ...], tuple[models.Field[Any, Any], ...]]:
    """The model's concrete fields split in two: (column, attribute) of those whose
    pre_save only reads the attribute, and the fields whose pre_save does more (auto_now
    dates, files, custom fields), which the upsert still asks. Per row and field, a
    pre_save call cost more than the rest of the row's encoding."""
    plain: list[tuple[str, str]] = []
    special: list[models.Field[Any, Any]] = []
    for f in model._meta.concrete_fields:
        reads_only = type(f).pre_save is models.Field.pre_save or (
            isinstance(f, models.DateField | models.TimeField)
            and type(f).pre_save in (models.DateField.pre_save, models.DateTimeField.pre_save, models.TimeField.pre_save)
            and not (f.auto_now or f.auto_now_add)
        )
        if reads_only:
            plain.append((f.column, f.attname))
        else:
            special.append(f)  # type: ignore[arg-type]
    return tuple(plain), tuple(special)


EventHandler = Callable[[Recorded[Any], Batch], None]
KeyFunction = Callable[[Sequence[Recorded[Any]]], Mapping[type[models.Model], Iterable[Any]]]


@dataclass(frozen=True, eq=False)  # identity equality: hashable, one object per projection
class Projection:
    """A consumer of the tenant's event log with a checkpoint. Read-model projections are
    this class; sagas (projections_app.sagas.SagaConsumer) are a kind of it."""

    KIND: ClassVar[str] = "projection"

    name: str
    version: int
    read_models: tuple[type[models.Model], ...]
    handlers: Mapping[type[DomainEvent], EventHandler]
    # Which rows a batch of events will touch, so they load in one query per model.
    keys: KeyFunction | None = None

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(event_cls.TYPE for event_cls in self.handlers)

    def event_filter(self) -> Q:
        """Which events of the log this consumer reads (the runner adds the position range)."""
        return Q(type__in=self.event_types)

    def reads(self, event_type: str, metadata: Mapping[str, Any]) -> bool:
        """event_filter() for one event in hand (the runner's look at a short stretch of
        the log asks it in Python instead of a query per consumer)."""
        return event_type in self.event_types

    def apply_batch(self, records: Sequence[Recorded[DomainEvent]]) -> None:
        batch = Batch()
        if self.keys is not None:
            for model, keys in self.keys(records).items():
                batch.load(model, keys)
        for recorded in records:
            try:
                self.handlers[type(recorded.event)](recorded, batch)
            except (OperationalError, InterfaceError):
                raise  # the database went away: not this event's fault
            except Exception as exc:
                raise HandlerFailed(recorded, exc) from exc
        batch.flush()

    def apply(self, recorded: Recorded[DomainEvent]) -> None:
        self.apply_batch([recorded])

    @property
    def fingerprint(self) -> str:
        """Hash of what the read model is built from: version, handler code, table shape.

        Stored when a read model is built; a different value later means the live rows may
        no longer be what this code would produce (a forgotten version bump included).
        """
        return _fingerprint(self)


@functools.cache
def _fingerprint(projection: Projection) -> str:
    digest = hashlib.sha256(f"{projection.name}:{projection.version}".encode())
    for event_cls, handler in sorted(projection.handlers.items(), key=lambda item: item[0].TYPE):
        digest.update(event_cls.TYPE.encode())
        try:
            digest.update(inspect.getsource(handler).encode())
        except (OSError, TypeError):
            digest.update(getattr(handler, "__qualname__", repr(handler)).encode())
    for model in projection.read_models:
        digest.update(model._meta.db_table.encode())
        for model_field in model._meta.concrete_fields:
            digest.update(
                f"{model_field.column}:{model_field.get_internal_type()}:{model_field.null}:{getattr(model_field, 'max_length', '')}".encode()
            )
    return digest.hexdigest()


@dataclass(frozen=True)
class ReadModel:
    """How a read model is exposed at /t/<tenant>/api/read-models/<name>/ and in the tenant
    admin: `filter_fields` are the API's exact-match filters and the admin's list filters;
    `money_fields` hold minor units of the currency in `currency_field` (the admin shows
    them as `12.34 EUR`); `list_fields`, when given, are the admin list's columns (by
    default every field but bookkeeping, long text and JSON)."""

    name: str
    model: type[models.Model]
    projection: str
    filter_fields: tuple[str, ...] = ()
    ordering: tuple[str, ...] = field(default=())
    money_fields: tuple[str, ...] = ()
    currency_field: str = "currency"
    list_fields: tuple[str, ...] = ()
