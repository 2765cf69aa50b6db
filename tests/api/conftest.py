"""The API tier: every test talks HTTP through a DRF client inside a rolled-back transaction.

Nothing here commits, so nothing processes a command by itself; a test that needs events
or read-model rows runs the real processing in-process (see helpers.process/project).
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _rolled_back(request: pytest.FixtureRequest, world: Any) -> None:
    """Tenants `acme`/`globex` and the personas exist; everything a test writes is undone.

    A test that asks for `live_db` (real commits, e.g. calling the WSGI app directly) keeps
    it: wrapping it in the `db` transaction as well would break its connection handling.
    """
    if "live_db" not in request.fixturenames:
        request.getfixturevalue("db")
