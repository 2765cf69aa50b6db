"""In-process helpers for integration tests (real PostgreSQL, committed data)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connections
from django_tenants.utils import schema_context

from commands_app import bus
from commands_app.models import Command


def submit(
    tenant: Any,
    type_name: str,
    payload: dict[str, Any],
    *,
    role: str = "developer",
    user_id: str = "1",
    command_id: uuid.UUID | None = None,
) -> Command:
    with schema_context(tenant.schema_name):
        return bus.submit(
            schema_name=tenant.schema_name,
            tenant=tenant.slug,
            type_name=type_name,
            payload=payload,
            role=role,
            user_id=user_id,
            command_id=command_id,
            source="test",
        ).command


def reload(tenant: Any, command_id: uuid.UUID) -> Command:
    with schema_context(tenant.schema_name):
        return Command.objects.get(pk=command_id)


def test_payload(system_id: uuid.UUID | None = None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"testId": str(uuid.uuid4()), "testName": "integration", **extra}
    if system_id:
        payload["systemId"] = str(system_id)
    return payload


test_payload.__test__ = False  # type: ignore[attr-defined]


def at_once(count: int, target: Callable[[], None]) -> None:
    """Run `target` in `count` threads released together (a barrier), each on its own
    database connection (closed at the end); re-raise the first exception one raised."""
    barrier = threading.Barrier(count)

    def run() -> None:
        try:
            barrier.wait()
            target()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(run) for _ in range(count)]:
            future.result()
