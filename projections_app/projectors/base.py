"""What a projection declares: name, version, read models, and event -> row handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from commands_app.domain.messages import Event, Recorded

EventHandler = Callable[[Recorded[Any]], None]


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ReadModel:
    """How a read model is exposed at /t/<tenant>/api/read-models/<name>/."""

    name: str
    model: type[models.Model]
    projection: str
    filter_fields: tuple[str, ...] = ()
    ordering: tuple[str, ...] = field(default=())
