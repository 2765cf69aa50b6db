"""The registry: every slice's commands, events, aggregates, access rules and upcasters.

Plain Python. Django loads it once (`commands_app.registry.get_registry`) and checks
`problems()` at start-up through a system check, so a slice with a command and no
handler, or a gap in an upcaster chain, stops the process before it serves anything.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.errors import Forbidden, InvalidPayload, UnknownCommandType
from commands_app.domain.messages import CommandContext, DomainCommand, DomainEvent, Message
from commands_app.domain.personal import PLACEHOLDER, PersonalData
from commands_app.domain.reads import ReadRule, SliceReads
from commands_app.domain.saga import Saga

Handler = Callable[[Any, Any, CommandContext], Sequence[DomainEvent]]
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (state at version v) -> state at version v+1, or None when it cannot be upcast
SnapshotUpcaster = Callable[[dict[str, Any]], dict[str, Any] | None]

# The tenant-admin role may send every command of every slice.
ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Slice:
    name: str
    aggregates: tuple[type[Aggregate], ...]
    command_handlers: Mapping[type[DomainCommand], Handler]
    events: tuple[type[DomainEvent], ...]
    # role -> the commands that role may send (the reference's "access model")
    access: Mapping[str, frozenset[type[DomainCommand]]]
    # (event type, from schema version) -> function turning that payload into the next version
    upcasters: Mapping[tuple[str, int], Upcaster] = field(default_factory=dict)
    sagas: tuple[Saga, ...] = ()
    # (aggregate type, from snapshot schema version) -> function to the next version
    snapshot_upcasters: Mapping[tuple[str, int], SnapshotUpcaster] = field(default_factory=dict)
    # Who reads the slice's read models, commands and events; None: nobody but the admin.
    reads: SliceReads | None = None
    # Command, event or aggregate class -> its fields that are personal data, and whose
    # (commands_app/domain/personal.py): stored sealed, erased by forgetting the subject.
    personal: Mapping[type[Message] | type[Aggregate], PersonalData] = field(default_factory=dict)


def _accepts_placeholder(info: FieldInfo) -> bool:
    try:
        annotated: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        TypeAdapter(annotated).validate_python(PLACEHOLDER)
    except ValidationError:
        return False
    return True


def _pydantic_details(exc: ValidationError) -> dict[str, Any]:
    fields: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False, include_context=False):
        loc = ".".join(str(part) for part in err["loc"]) or "payload"
        fields.setdefault(loc, []).append(err["msg"])
    return {"fields": fields}


def _unknown_command(type_name: str, sendable: Iterable[str]) -> UnknownCommandType:
    """The error for a type nobody registered. `known` lists only what the caller could send
    (internal saga steps and other roles' commands are noise to it, and /api/registry/
    lists everything); `did_you_mean` is the closest of those, matched without case."""
    known = sorted(sendable)
    by_folded = {name.casefold(): name for name in known}
    close = difflib.get_close_matches(type_name.casefold(), list(by_folded), n=1)
    guess = by_folded[close[0]] if close else None
    hint = f" Did you mean '{guess}'?" if guess else ""
    return UnknownCommandType(
        f"Unknown command type '{type_name}'.{hint}", details={"known": known, "did_you_mean": guess}
    )


class Registry:
    def __init__(self, slices: Sequence[Slice]) -> None:
        self.slices = tuple(slices)
        self.commands: dict[str, type[DomainCommand]] = {}
        self.events: dict[str, type[DomainEvent]] = {}
        self.aggregates: dict[str, type[Aggregate]] = {}
        self.handlers: dict[type[DomainCommand], Handler] = {}
        self.roles: dict[str, set[str]] = {ADMIN_ROLE: set()}
        self.upcasters: dict[tuple[str, int], Upcaster] = {}
        self.snapshot_upcasters: dict[tuple[str, int], SnapshotUpcaster] = {}
        self.sagas: dict[str, Saga] = {}
        # read model name -> its rule; slice name -> roles reading all its commands and events
        self.read_rules: dict[str, ReadRule] = {}
        self.message_readers: dict[str, frozenset[str]] = {}
        # command type / event type / aggregate type / saga name -> the slice that owns it
        self.slice_of: dict[str, str] = {}
        # Personal fields by command type, event type and aggregate type, as stored: wire
        # (camelCase) names in payloads, attribute names in snapshot state.
        self.personal_commands: dict[str, PersonalData] = {}
        self.personal_events: dict[str, PersonalData] = {}
        self.personal_state: dict[str, PersonalData] = {}
        self._problems: list[tuple[str, str]] = []
        for sl in self.slices:
            self._add(sl)

    # -- building and checking -------------------------------------------------------------
    def _problem(self, check_id: str, message: str) -> None:
        self._problems.append((check_id, message))

    def _add(self, sl: Slice) -> None:
        for agg in sl.aggregates:
            if agg.TYPE in self.aggregates:
                self._problem("intent.E003", f"aggregate type '{agg.TYPE}' is registered twice")
            self.aggregates[agg.TYPE] = agg
        for event_cls in sl.events:
            if event_cls.TYPE in self.events:
                self._problem("intent.E002", f"event type '{event_cls.TYPE}' is registered twice")
            self.events[event_cls.TYPE] = event_cls
        for cmd_cls, handler in sl.command_handlers.items():
            if cmd_cls.TYPE in self.commands:
                self._problem("intent.E001", f"command type '{cmd_cls.TYPE}' has more than one handler")
            self.commands[cmd_cls.TYPE] = cmd_cls
            self.handlers[cmd_cls] = handler
            if getattr(cmd_cls, "AGGREGATE_TYPE", None) not in self.aggregates:
                self._problem(
                    "intent.E004",
                    f"command '{cmd_cls.TYPE}' targets unknown aggregate type '{getattr(cmd_cls, 'AGGREGATE_TYPE', None)}'",
                )
        for role, allowed in sl.access.items():
            for cmd_cls in allowed:
                if cmd_cls not in sl.command_handlers:
                    self._problem(
                        "intent.E005",
                        f"role '{role}' is granted '{cmd_cls.TYPE}', which has no handler",
                    )
                if cmd_cls.INTERNAL:
                    self._problem(
                        "intent.E013",
                        f"role '{role}' is granted '{cmd_cls.TYPE}', an internal command",
                    )
            self.roles.setdefault(role, set()).update(c.TYPE for c in allowed if not c.INTERNAL)
        for (event_type, version), fn in sl.upcasters.items():
            if (event_type, version) in self.upcasters:
                self._problem("intent.E006", f"two upcasters for '{event_type}' v{version}")
            self.upcasters[(event_type, version)] = fn
        for (aggregate_type, version), snapshot_fn in sl.snapshot_upcasters.items():
            if (aggregate_type, version) in self.snapshot_upcasters:
                self._problem("intent.E010", f"two snapshot upcasters for '{aggregate_type}' v{version}")
            self.snapshot_upcasters[(aggregate_type, version)] = snapshot_fn
        for saga in sl.sagas:
            if saga.name in self.sagas:
                self._problem("intent.E014", f"saga '{saga.name}' is registered twice")
            self.sagas[saga.name] = saga
        self.roles[ADMIN_ROLE].update(t for t, cls in self.commands.items() if not cls.INTERNAL)
        for owner, spec in sl.personal.items():
            self._add_personal(sl, owner, spec)
        self._add_reads(sl)

    def _add_personal(self, sl: Slice, owner: type[Message] | type[Aggregate], spec: PersonalData) -> None:
        """Record one personal-data declaration, checked: the fields exist, accept the
        placeholder (an erased value must still validate), and the subject field exists."""
        name = getattr(owner, "TYPE", owner.__name__)
        if isinstance(owner, type) and issubclass(owner, Aggregate):
            known = {f.name for f in dataclasses.fields(owner)}
            for field_name in spec.fields:
                if field_name not in known:
                    self._problem(
                        "intent.E021", f"personal field '{field_name}' is not a field of aggregate '{name}'"
                    )
            if spec.subject is not None:
                self._problem(
                    "intent.E022",
                    f"aggregate '{name}': personal state belongs to the aggregate itself (no subject field)",
                )
            if owner not in sl.aggregates:
                self._problem(
                    "intent.E023", f"personal data declared for aggregate '{name}' of another slice"
                )
            self.personal_state[name] = spec
            return
        model_fields = owner.model_fields
        wire: list[str] = []
        for field_name in (*spec.fields, *((spec.subject,) if spec.subject else ())):
            info = model_fields.get(field_name)
            if info is None:
                self._problem("intent.E021", f"personal field '{field_name}' is not a field of '{name}'")
                continue
            wire.append(info.alias or field_name)
            if field_name in spec.fields and not _accepts_placeholder(info):
                self._problem(
                    "intent.E024",
                    f"personal field '{field_name}' of '{name}' does not accept the placeholder {PLACEHOLDER!r}",
                )
        fields, subject = tuple(wire[: len(spec.fields)]), (wire[-1] if spec.subject else None)
        stored = PersonalData(fields=fields, subject=subject)
        if issubclass(owner, DomainCommand) and owner in sl.command_handlers:
            self.personal_commands[name] = stored
        elif issubclass(owner, DomainEvent) and owner in sl.events:
            self.personal_events[name] = stored
        else:
            self._problem(
                "intent.E023",
                f"personal data declared for '{name}', which is not a command or event of slice '{sl.name}'",
            )

    def _add_reads(self, sl: Slice) -> None:
        for name in (
            *(c.TYPE for c in sl.command_handlers),
            *(e.TYPE for e in sl.events),
            *(a.TYPE for a in sl.aggregates),
            *(s.name for s in sl.sagas),
        ):
            self.slice_of.setdefault(name, sl.name)
        if sl.reads is None:
            self._problem(
                "intent.W020",
                f"slice '{sl.name}' declares no READS: only the tenant admin reads its commands and events",
            )
            return
        self.message_readers[sl.name] = sl.reads.messages
        for name, rule in sl.reads.read_models.items():
            if name in self.read_rules:
                self._problem("intent.E017", f"read model '{name}' is declared by two slices")
            self.read_rules[name] = rule
            self._problems.extend(rule.problems(name))

    def problems(self) -> list[tuple[str, str]]:
        found = list(self._problems)
        for (event_type, version), _fn in self.upcasters.items():
            event_cls = self.events.get(event_type)
            if event_cls is None:
                found.append(("intent.E007", f"upcaster for unknown event type '{event_type}'"))
                continue
            if not 1 <= version < event_cls.SCHEMA_VERSION:
                found.append(
                    (
                        "intent.E008",
                        f"upcaster '{event_type}' v{version} is outside 1..{event_cls.SCHEMA_VERSION - 1}",
                    )
                )
        for event_type, event_cls in self.events.items():
            for version in range(1, event_cls.SCHEMA_VERSION):
                if (event_type, version) not in self.upcasters:
                    found.append(
                        (
                            "intent.E009",
                            f"'{event_type}' is at v{event_cls.SCHEMA_VERSION} but has no upcaster from v{version}",
                        )
                    )
        for aggregate_type, version in self.snapshot_upcasters:
            aggregate_cls = self.aggregates.get(aggregate_type)
            if aggregate_cls is None:
                found.append(("intent.E011", f"snapshot upcaster for unknown aggregate '{aggregate_type}'"))
            elif not 1 <= version < aggregate_cls.SNAPSHOT_SCHEMA_VERSION:
                found.append(
                    (
                        "intent.E012",
                        f"snapshot upcaster '{aggregate_type}' v{version} is outside "
                        f"1..{aggregate_cls.SNAPSHOT_SCHEMA_VERSION - 1}",
                    )
                )
        for saga in self.sagas.values():
            for event_cls in saga.on_events:
                if self.events.get(event_cls.TYPE) is not event_cls:
                    found.append(
                        ("intent.E015", f"saga '{saga.name}' reacts to unregistered event '{event_cls.TYPE}'")
                    )
            for cmd_cls in saga.on_commands:
                if self.commands.get(cmd_cls.TYPE) is not cmd_cls:
                    found.append(
                        ("intent.E016", f"saga '{saga.name}' reacts to unregistered command '{cmd_cls.TYPE}'")
                    )
        return found

    # -- commands ----------------------------------------------------------------------------
    def command_class(self, type_name: str) -> type[DomainCommand]:
        """The class of a command type; unknown types list the public ones (any role's)."""
        try:
            return self.commands[type_name]
        except KeyError:
            raise _unknown_command(type_name, self.roles[ADMIN_ROLE]) from None

    def parse_command(self, type_name: str, payload: Any) -> DomainCommand:
        cls = self.command_class(type_name)
        if not isinstance(payload, dict):
            raise InvalidPayload(
                "The payload must be a JSON object.",
                details={"fields": {"payload": ["Not an object."]}},
            )
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise InvalidPayload(
                f"The payload is not a valid '{type_name}'.", details=_pydantic_details(exc)
            ) from None

    def authorize(self, role: str | None, type_name: str) -> None:
        """Refuse what `role` may not send; an unknown type lists what it may send."""
        cls = self.commands.get(type_name)
        if cls is None:
            raise _unknown_command(type_name, self.roles.get(role, ()) if role else ())
        if cls.INTERNAL:
            raise Forbidden(
                f"'{type_name}' is an internal command: only the platform's sagas issue it.",
                code="internal_command",
                details={"role": role, "command": type_name, "allowed_roles": []},
            )
        if role is None or type_name not in self.roles.get(role, ()):
            raise Forbidden(
                f"Role '{role}' may not send '{type_name}'.",
                details={
                    "role": role,
                    "command": type_name,
                    "allowed_roles": self.roles_for(type_name),
                },
            )

    def roles_for(self, type_name: str) -> list[str]:
        return sorted(role for role, allowed in self.roles.items() if type_name in allowed)

    def aggregate_for(self, command: DomainCommand) -> type[Aggregate]:
        return self.aggregates[command.AGGREGATE_TYPE]

    def decide(self, aggregate: Aggregate, command: DomainCommand, ctx: CommandContext) -> list[DomainEvent]:
        return list(self.handlers[type(command)](aggregate, command, ctx))

    # -- events --------------------------------------------------------------------------------
    def upcast(self, type_name: str, schema_version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Chain upcasters from the stored version to the current one. Never mutates input."""
        target = self.events[type_name].SCHEMA_VERSION
        version = schema_version
        while version < target:
            payload = self.upcasters[(type_name, version)](dict(payload))
            version += 1
        return payload

    def parse_event(self, type_name: str, schema_version: int, payload: dict[str, Any]) -> DomainEvent:
        cls = self.events[type_name]
        return cls.model_validate(self.upcast(type_name, schema_version, payload))

    def upcast_snapshot(
        self, aggregate_cls: type[Aggregate], schema_version: int, state: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Chain snapshot upcasters to the aggregate's current state version; None if impossible."""
        version = schema_version
        current: dict[str, Any] | None = state
        while current is not None and version < aggregate_cls.SNAPSHOT_SCHEMA_VERSION:
            step = self.snapshot_upcasters.get((aggregate_cls.TYPE, version))
            if step is None:
                return None
            current = step(dict(current))
            version += 1
        return current if version == aggregate_cls.SNAPSHOT_SCHEMA_VERSION else None

    # -- description (GET /api/registry/) --------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        def schema(cls: type[DomainCommand] | type[DomainEvent]) -> dict[str, Any]:
            return cls.model_json_schema(by_alias=True)

        slice_of_cmd = {c.TYPE: sl.name for sl in self.slices for c in sl.command_handlers}
        slice_of_event = {e.TYPE: sl.name for sl in self.slices for e in sl.events}
        return {
            "commands": [
                {
                    "type": t,
                    "slice": slice_of_cmd[t],
                    "aggregate": cls.AGGREGATE_TYPE,
                    "roles": self.roles_for(t),
                    "internal": cls.INTERNAL,
                    "description": (cls.__doc__ or "").strip(),
                    "schema": schema(cls),
                }
                for t, cls in sorted(self.commands.items())
            ],
            "events": [
                {
                    "type": t,
                    "slice": slice_of_event[t],
                    "schema_version": cls.SCHEMA_VERSION,
                    "description": (cls.__doc__ or "").strip(),
                    "schema": schema(cls),
                }
                for t, cls in sorted(self.events.items())
            ],
            "aggregates": [
                {"type": t, "snapshot_schema_version": cls.SNAPSHOT_SCHEMA_VERSION}
                for t, cls in sorted(self.aggregates.items())
            ],
            "sagas": [
                {
                    "name": saga.name,
                    "events": sorted(e.TYPE for e in saga.on_events),
                    "commands": sorted(c.TYPE for c in saga.on_commands),
                }
                for _, saga in sorted(self.sagas.items())
            ],
            "roles": {role: sorted(allowed) for role, allowed in sorted(self.roles.items())},
            # Who reads what besides the tenant admin (who reads everything).
            "reads": {
                "read_models": {
                    name: {
                        "all_rows": sorted(rule.all_rows),
                        "own_rows": sorted(rule.own_rows),
                        "own_field": rule.own_field,
                        "redacted": {role: sorted(fields) for role, fields in sorted(rule.redacted.items())},
                    }
                    for name, rule in sorted(self.read_rules.items())
                },
                "messages": {name: sorted(roles) for name, roles in sorted(self.message_readers.items())},
            },
        }
