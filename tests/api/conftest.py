"""The API tier: every test talks HTTP through a DRF client inside a rolled-back transaction.

Nothing here commits, so nothing processes a command by itself; a test that needs events
or read-model rows runs the real processing in-process (see helpers.process/project).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django_tenants.utils import schema_context

from tests.api.helpers import client_for, execute_test, project, submit_and_process


@pytest.fixture(autouse=True)
def _rolled_back(request: pytest.FixtureRequest, world: Any) -> None:
    """Tenants `acme`/`globex` and the personas exist; everything a test writes is undone.

    A test that asks for `live_db` (real commits, e.g. calling the WSGI app directly) keeps
    it: wrapping it in the `db` transaction as well would break its connection handling.
    """
    if "live_db" not in request.fixturenames:
        request.getfixturevalue("db")


@pytest.fixture
def stalled(world):
    """system_status stalled on the testExecuted event of a fresh system (not yet projected).
    Returns (event row, system id)."""
    from events_app.models import Event
    from projections_app.models import ProjectionState

    project(world.acme)
    system_id = uuid.uuid4()
    command = submit_and_process(
        client_for(world["dave"]), "executeTest", execute_test(system_id=system_id), world.acme
    )
    with schema_context(world.acme.schema_name):
        event = Event.objects.get(command_id=command["id"])
        ProjectionState.objects.filter(name="system_status").update(
            status="stalled",
            failures=5,
            last_error={
                "code": "projection_handler_failed",
                "message": "RuntimeError: boom",
                "details": {"event_id": str(event.id), "position": event.position, "type": event.type},
            },
        )
    return event, system_id
