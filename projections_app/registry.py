"""All projections and exposed read models, loaded once from settings.INTENT_PROJECTORS."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable

from django.conf import settings

from commands_app.registry import get_registry
from projections_app.projectors.base import Projection, ReadModel
from projections_app.sagas import SagaConsumer


@functools.cache
def _load() -> tuple[tuple[Projection, ...], tuple[ReadModel, ...]]:
    projections: list[Projection] = []
    read_models: list[ReadModel] = []
    for module_path in settings.INTENT_PROJECTORS:
        module = importlib.import_module(module_path)
        projections.extend(module.PROJECTIONS)
        read_models.extend(module.READ_MODELS)
    return tuple(projections), tuple(read_models)


def get_projections() -> tuple[Projection, ...]:
    return _load()[0]


def get_projection(name: str) -> Projection | None:
    return next((p for p in get_projections() if p.name == name), None)


@functools.cache
def get_sagas() -> tuple[Projection, ...]:
    """Every slice's sagas, each run as a checkpointed consumer of the log."""
    return tuple(SagaConsumer.of(saga) for saga in get_registry().sagas.values())


def get_consumers() -> tuple[Projection, ...]:
    """Everything with a checkpoint: read-model projections, then sagas."""
    return get_projections() + get_sagas()


def get_consumer(name: str) -> Projection | None:
    return next((p for p in get_consumers() if p.name == name), None)


def get_read_models() -> dict[str, ReadModel]:
    return {rm.name: rm for rm in _load()[1]}


def projections_for_event_types(event_types: Iterable[str]) -> frozenset[str]:
    """The read-model projections (not sagas) that handle any of these event types."""
    wanted = set(event_types)
    return frozenset(p.name for p in get_projections() if p.event_types & wanted)
