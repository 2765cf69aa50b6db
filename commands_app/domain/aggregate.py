"""Aggregate base: state evolved by `apply`; decisions live in the slice's handler functions."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self
from uuid import UUID

from pydantic import TypeAdapter

from commands_app.domain.messages import DomainEvent


@dataclasses.dataclass
class Aggregate:
    """Subclasses are dataclasses whose fields are the whole state.

    Keeping all state in typed dataclass fields is what makes snapshots exact: pydantic
    dumps every field to JSON and validates it back to the same types (UUID, Decimal,
    datetime, sets, nested dataclasses), so restoring cannot forget or mistype a field the
    way hand-written to/from-snapshot code can.
    """

    TYPE: ClassVar[str]
    # Bump when the fields change shape; give the slice a snapshot upcaster from the old
    # version, or old snapshots are ignored and the streams replayed.
    SNAPSHOT_SCHEMA_VERSION: ClassVar[int] = 1
    # A snapshot every this many events; None means settings.SNAPSHOT_EVERY, 0 never.
    SNAPSHOT_EVERY: ClassVar[int | None] = None

    id: UUID
    version: int = 0

    def apply(self, event: DomainEvent) -> None:
        """Evolve state by one event. Must not raise for any stored event."""
        raise NotImplementedError

    def evolve(self, event: DomainEvent, version: int) -> None:
        self.apply(event)
        self.version = version

    def snapshot_state(self) -> dict[str, Any]:
        state: dict[str, Any] = _adapter(type(self)).dump_python(self, mode="json")
        return state

    @classmethod
    def from_snapshot(cls, state: dict[str, Any]) -> Self:
        """Raises pydantic.ValidationError when the state does not fit the fields."""
        aggregate: Self = _adapter(cls).validate_python(state)
        return aggregate


_ADAPTERS: dict[type[Aggregate], TypeAdapter[Any]] = {}


def _adapter(cls: type[Aggregate]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter
