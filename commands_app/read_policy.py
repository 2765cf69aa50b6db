"""The read policy: the one module that says which rows, fields, commands and events a
caller may see. It evaluates the slices' `READS` (commands_app/domain/reads.py).

Every surface where tenant data leaves asks it: the read-model API, the commands and
events APIs, traces, the tenant admin (lists, pages, searches, the flow tree) and the
bus (a client's correlation and causation ids must name a flow it may see). Views and
admins hold no rule of their own; they turn the answers here into querysets and errors.

The rules, in order:
- a platform superuser, and the tenant's `admin`, read everything;
- a read model is read as its slice's `ReadRule` says; one no slice declares, by no one
  else;
- commands and events of a slice are read in full by the slice's `messages` roles; every
  member also sees the commands it sent itself and the events those commands recorded;
- anyone else (no membership) reads nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db.models import Q

from commands_app.domain.errors import IntentError
from commands_app.domain.reads import RowScope
from commands_app.domain.registry import ADMIN_ROLE, Registry
from commands_app.models import Command
from commands_app.registry import get_registry
from events_app.models import Event
from intent_project.api.permissions import tenant_role

NOTHING = Q(pk__in=[])
EVERYTHING = Q()


@dataclass(frozen=True)
class Reader:
    """Who asks: the membership's role in this tenant, the user's id, and the superuser flag."""

    role: str | None
    user_id: str | None
    superuser: bool = False

    @classmethod
    def of(cls, user: Any, role: str | None) -> Reader:
        authenticated = bool(getattr(user, "is_authenticated", False))
        return cls(
            role=role if authenticated else None,
            user_id=str(user.pk) if authenticated and user.pk is not None else None,
            superuser=authenticated and bool(user.is_superuser) and bool(user.is_active),
        )

    @property
    def reads_everything(self) -> bool:
        return self.superuser or self.role == ADMIN_ROLE


@dataclass(frozen=True)
class ReadModelScope:
    """What one reader sees of one read model: which rows (a filter) and which fields not."""

    rows: RowScope
    filter: Q
    redacted: frozenset[str]

    @property
    def allowed(self) -> bool:
        return self.rows is not RowScope.NONE


_DENIED = ReadModelScope(RowScope.NONE, NOTHING, frozenset())


def read_model_scope(reader: Reader, name: str, registry: Registry | None = None) -> ReadModelScope:
    if reader.reads_everything:
        return ReadModelScope(RowScope.ALL, EVERYTHING, frozenset())
    rule = (registry or get_registry()).read_rules.get(name)
    if rule is None or reader.role is None:
        return _DENIED
    scope = rule.scope(reader.role)
    if scope is RowScope.ALL:
        return ReadModelScope(scope, EVERYTHING, rule.hidden_fields(reader.role))
    if scope is RowScope.OWN and rule.own_field and reader.user_id is not None:
        return ReadModelScope(scope, Q(**{rule.own_field: reader.user_id}), rule.hidden_fields(reader.role))
    return _DENIED


class ReadNotAllowed(IntentError):
    """The caller's role reads nothing of this read model (answered 403)."""

    code = "read_not_allowed"


def require_read_model(reader: Reader, name: str) -> ReadModelScope:
    """The reader's scope on `name`, or ReadNotAllowed when it reads none of it."""
    scope = read_model_scope(reader, name)
    if not scope.allowed:
        raise ReadNotAllowed(
            f"Role '{reader.role}' may not read '{name}'.",
            details={"role": reader.role, "read_model": name},
        )
    return scope


def redact(row: dict[str, Any], scope: ReadModelScope) -> dict[str, Any]:
    """A serialized row with the scope's redacted fields set to null (the shape stays the
    same for every role, so a client's schema never depends on who reads)."""
    if not scope.redacted:
        return row
    return {key: (None if key in scope.redacted else value) for key, value in row.items()}


def api_reader(request: Any) -> Reader:
    """The reader behind an API request (role from the membership, set by IsTenantMember)."""
    return Reader.of(request.user, tenant_role(request))


def readable_slices(reader: Reader, registry: Registry | None = None) -> frozenset[str]:
    """The slices whose commands and events this reader sees in full."""
    registry = registry or get_registry()
    if reader.reads_everything:
        return frozenset(sl.name for sl in registry.slices)
    return frozenset(
        name
        for name, roles in registry.message_readers.items()
        if reader.role is not None and reader.role in roles
    )


def _owned_by(registry: Registry, kind: str, reader: Reader) -> list[str]:
    readable = readable_slices(reader, registry)
    names: Iterable[str] = {
        "command": registry.commands.keys(),
        "event": registry.events.keys(),
        "aggregate": registry.aggregates.keys(),
        "saga": registry.sagas.keys(),
    }[kind]
    return sorted(name for name in names if registry.slice_of.get(name) in readable)


def _is_member(reader: Reader) -> bool:
    return reader.reads_everything or reader.role is not None


def _visible(reader: Reader, registry: Registry | None, kind: str, own: Callable[[str], Q]) -> Q:
    """The messages of `kind` a reader sees: its slices' in full, plus its own (`own`)."""
    if reader.reads_everything:
        return EVERYTHING
    if not _is_member(reader):
        return NOTHING
    visible = Q(type__in=_owned_by(registry or get_registry(), kind, reader))
    if reader.user_id is not None:
        visible |= own(reader.user_id)
    return visible


def visible_commands(reader: Reader, registry: Registry | None = None) -> Q:
    """A filter on `commands_app.Command`: the commands this reader may see."""
    return _visible(reader, registry, "command", lambda user_id: Q(metadata__user_id=user_id))


def sees_command(reader: Reader, registry: Registry | None = None) -> Callable[[Command], bool]:
    """visible_commands as a test of one loaded command (a GET by id reads the row by its
    key, then asks this); tests/api/test_commands_api.py holds both to the same answers
    for every role."""
    if reader.reads_everything:
        return lambda command: True
    if not _is_member(reader):
        return lambda command: False
    types = frozenset(_owned_by(registry or get_registry(), "command", reader))
    user_id = reader.user_id

    def sees(command: Command) -> bool:
        if command.type in types:
            return True
        metadata = command.metadata
        return user_id is not None and isinstance(metadata, dict) and metadata.get("user_id") == user_id

    return sees


def visible_events(reader: Reader, registry: Registry | None = None) -> Q:
    """A filter on `events_app.Event`: the events this reader may see (those the commands it
    sent recorded count as its own)."""
    return _visible(
        reader,
        registry,
        "event",
        lambda user_id: Q(command_id__in=Command.objects.filter(metadata__user_id=user_id).values("id")),
    )


def sees_event(reader: Reader, registry: Registry | None = None) -> Callable[[str, str | None], bool]:
    """visible_events as a test of one event in memory: its type, and the user whose command
    recorded it. Live streams filter a shared feed with it (events_app/stream.py);
    tests/api/test_streams_api.py holds both to the same answers for every role."""
    if reader.reads_everything:
        return lambda type_name, sent_by: True
    if not _is_member(reader):
        return lambda type_name, sent_by: False
    types = frozenset(_owned_by(registry or get_registry(), "event", reader))
    user_id = reader.user_id
    return lambda type_name, sent_by: type_name in types or (user_id is not None and sent_by == user_id)


def visible_aggregate_types(reader: Reader, registry: Registry | None = None) -> Q:
    """A filter on `events_app.Snapshot`: snapshots hold a whole aggregate's state, so only
    readers of all the slice's events see them."""
    if reader.reads_everything:
        return EVERYTHING
    return Q(stream_type__in=_owned_by(registry or get_registry(), "aggregate", reader))


def visible_sagas(reader: Reader, registry: Registry | None = None) -> Q:
    """A filter on `projections_app.SagaInstance`: a saga's state belongs to its slice."""
    if reader.reads_everything:
        return EVERYTHING
    return Q(saga__in=_owned_by(registry or get_registry(), "saga", reader))


class FlowNotVisible(IntentError):
    """A client named a correlation or causation id it may not use."""

    code = "validation_error"


def check_flow_references(reader: Reader, correlation_id: Any, causation_id: Any) -> None:
    """A client may join a flow, or name a cause, only among messages of this tenant it may
    see: `correlation_id` must be the correlation id of a visible command or event,
    `causation_id` the id of one. Missing and not-yours answer alike, so the answer tells
    nothing about other users' flows. Sagas and internal paths never come through here.
    """
    fields: dict[str, list[str]] = {}
    if correlation_id and not _flow_exists(reader, UUID(str(correlation_id))):
        fields["correlation_id"] = ["No flow with this id that you may see in this tenant."]
    if causation_id and not _message_exists(reader, UUID(str(causation_id))):
        fields["causation_id"] = ["No command or event with this id that you may see in this tenant."]
    if fields:
        raise FlowNotVisible(
            "The metadata names a flow or message you may not use.",
            details={"fields": {"metadata": fields}},
        )


def _flow_exists(reader: Reader, correlation_id: UUID) -> bool:
    return (
        Command.objects.filter(visible_commands(reader), correlation_id=correlation_id).exists()
        or Event.objects.filter(visible_events(reader), correlation_id=correlation_id).exists()
    )


def _message_exists(reader: Reader, message_id: UUID) -> bool:
    return (
        Command.objects.filter(visible_commands(reader), id=message_id).exists()
        or Event.objects.filter(visible_events(reader), id=message_id).exists()
    )
