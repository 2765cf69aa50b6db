"""Message bases. Commands are imperative (`LogMessage`), events past tense (`MessageLogged`).

Payload classes are pydantic models: the same class validates a request, documents itself
as JSON Schema for the registry and OpenAPI, and types the handler's argument. Python
attributes are snake_case; the wire names are camelCase, as in the reference platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Message(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    TYPE: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class DomainCommand(Message):
    """A request to change one aggregate."""

    AGGREGATE_TYPE: ClassVar[str]
    # Internal commands are steps of a process (a saga's debit, credit, refund): only sagas
    # issue them. No role may send one, the tenant admin included.
    INTERNAL: ClassVar[bool] = False

    def aggregate_id(self, ctx: CommandContext) -> UUID:
        raise NotImplementedError


class DomainEvent(Message):
    """A fact. `SCHEMA_VERSION` is the current payload version; older ones are upcast on read."""

    SCHEMA_VERSION: ClassVar[int] = 1


E = TypeVar("E", bound=DomainEvent)


@dataclass(frozen=True)
class CommandContext:
    """Who asks, in which tenant, as part of which flow. Built by the bus, never by clients."""

    command_id: UUID
    tenant: str
    user_id: str | None
    role: str | None
    correlation_id: UUID
    causation_id: UUID | None
    now: datetime


@dataclass(frozen=True)
class Recorded(Generic[E]):
    """An event as stored: the typed payload plus its place in the log."""

    event: E
    id: UUID
    stream_type: str
    stream_id: UUID
    version: int
    position: int
    recorded_at: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.event.TYPE
