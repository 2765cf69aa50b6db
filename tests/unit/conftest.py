"""Unit tests touch no database: slice logic runs against the in-memory event store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from commands_app.domain.messages import CommandContext
from commands_app.domain.registry import Registry
from commands_app.domain.store import InMemoryEventStore
from commands_app.slices.system import SLICE


@pytest.fixture
def registry() -> Registry:
    return Registry([SLICE])


@pytest.fixture
def store(registry: Registry) -> InMemoryEventStore:
    return InMemoryEventStore(registry)


def make_ctx(role: str | None = "tester", user_id: str | None = "42", tenant: str = "acme") -> CommandContext:
    command_id = uuid.uuid4()
    return CommandContext(
        command_id=command_id,
        tenant=tenant,
        user_id=user_id,
        role=role,
        correlation_id=command_id,
        causation_id=None,
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
