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

from pydantic import BaseModel, ConfigDict, Field
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


class SagaTrigger(BaseModel):
    """The event (or handled command) a saga reacted to when it issued a command."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    position: int
    type: str


class CommandMetadata(BaseModel):
    """Who sent a command, from where, as part of which flow: the command row's `metadata`.

    Built by the bus (and by sagas through it), read back by the worker. The stored JSON
    keeps the key names rows have always had, and keys this class does not know (from
    older or newer code) are kept as they are.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    tenant: str = ""
    source: str = ""  # "api", "saga", "test", ...
    user_id: str | None = None
    username: str | None = None
    role: str | None = None
    request_id: str | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    received_at: datetime | None = None
    labels: Mapping[str, str] = Field(default_factory=dict)  # the client's own tags
    saga: str | None = None
    trigger: SagaTrigger | None = None
    # One entry per operator retry of a failed command (the error it had then).
    previous_errors: tuple[Mapping[str, Any], ...] = ()
    # The W3C trace context of the span that stored the command (intent_project/tracing.py):
    # the worker continues that trace. Empty when tracing is off.
    trace: Mapping[str, str] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stored form; keys only some commands have are left out when empty."""
        stored = self.model_dump(mode="json")
        for key in _ONLY_WHEN_SET:
            if not stored[key]:
                del stored[key]
        return stored

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> CommandMetadata:
        return cls.model_validate(stored or {})

    def context(self, command_id: UUID, correlation_id: UUID | None, now: datetime) -> CommandContext:
        """The context a handler sees. The row's own correlation column wins (it is the
        indexed truth); a command without any is the first of its flow."""
        return CommandContext(
            command_id=command_id,
            tenant=self.tenant,
            user_id=self.user_id,
            role=self.role,
            correlation_id=correlation_id or self.correlation_id or command_id,
            causation_id=self.causation_id,
            now=now,
        )


_ONLY_WHEN_SET = ("labels", "saga", "trigger", "previous_errors", "trace")


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
