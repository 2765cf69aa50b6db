"""What a projection declares: name, version, read models, and event -> row handlers."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from commands_app.domain.messages import Event, Recorded

EventHandler = Callable[[Recorded[Any]], None]


@dataclass(frozen=True, eq=False)  # identity equality: hashable, one object per projection
class Projection:
    name: str
    version: int
    read_models: tuple[type[models.Model], ...]
    handlers: Mapping[type[Event], EventHandler]

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(event_cls.TYPE for event_cls in self.handlers)

    def apply(self, recorded: Recorded[Event]) -> None:
        self.handlers[type(recorded.event)](recorded)

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
    """How a read model is exposed at /t/<tenant>/api/read-models/<name>/."""

    name: str
    model: type[models.Model]
    projection: str
    filter_fields: tuple[str, ...] = ()
    ordering: tuple[str, ...] = field(default=())
