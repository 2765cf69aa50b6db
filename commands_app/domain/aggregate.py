"""Aggregate base: state evolved by `apply`; decisions live in the slice's handler functions."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self
from uuid import UUID

from commands_app.domain.messages import Event


@dataclasses.dataclass
class Aggregate:
    """Subclasses are dataclasses whose fields are the whole state.

    Keeping all state in dataclass fields is what makes snapshots exact: a snapshot is
    `asdict(state)` and restoring it cannot forget a field the way hand-written
    to/from-snapshot code can.
    """

    TYPE: ClassVar[str]
    SNAPSHOT_SCHEMA_VERSION: ClassVar[int] = 1

    id: UUID
    version: int = 0

    def apply(self, event: Event) -> None:
        """Evolve state by one event. Must not raise for any stored event."""
        raise NotImplementedError

    def evolve(self, event: Event, version: int) -> None:
        self.apply(event)
        self.version = version

    def snapshot_state(self) -> dict[str, Any]:
        state = dataclasses.asdict(self)
        state["id"] = str(self.id)
        return state

    @classmethod
    def from_snapshot(cls, state: dict[str, Any]) -> Self:
        values = dict(state)
        values["id"] = UUID(str(values["id"]))
        return cls(**values)
