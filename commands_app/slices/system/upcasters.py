"""Upcasters: (event type, from version) -> pure function to the next payload version.

None yet: every system event is still at schema version 1.
"""

from __future__ import annotations

from commands_app.domain.registry import Upcaster

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
