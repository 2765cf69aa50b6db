"""Django's handle on the plain-Python registry: built once from settings.INTENT_SLICES."""

from __future__ import annotations

import functools
import importlib

from django.conf import settings

from commands_app.domain.registry import Registry, Slice


@functools.cache
def get_registry() -> Registry:
    slices: list[Slice] = []
    for module_path in settings.INTENT_SLICES:
        slices.append(importlib.import_module(module_path).SLICE)
    return Registry(slices)
