"""Sagas run as checkpointed consumers of the tenant's event log.

A saga is a `Projection` to the runner: it holds a checkpoint row (locked with SKIP
LOCKED, so one runner per saga per tenant at a time and triggers in log order), and
`apply_batch` runs inside the runner's transaction. So for every batch of triggers:

- the commands the saga issues are inserted (status pending),
- the saga instances' state rows are upserted,
- the checkpoint advances,

all in one commit, or none of it. Issued command ids come from (saga, trigger, key)
(commands_app.domain.saga.issued_command_id) and are inserted with ON CONFLICT DO
NOTHING, so a batch replayed after a crash, a rebuild of the checkpoint or a trigger seen
twice issues nothing twice. Wake-ups for the new commands are sent after commit; the sweep
covers a lost one, like any command.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q

from commands_app.bus import enqueue_on_commit, insert_commands, new_command_row
from commands_app.domain.messages import CommandMetadata, DomainEvent, Recorded, SagaTrigger
from commands_app.domain.saga import HandledCommand, Issue, Saga, SagaState, instance_key, react
from commands_app.models import Command
from commands_app.registry import get_registry
from commands_app.tasks import wake_commands
from events_app.personal import Keyring
from intent_project import lifecycle, tracing
from intent_project.tenancy import current_schema
from intent_project.tenants.models import Tenant
from projections_app.models import SagaInstance
from projections_app.projectors.base import HandlerFailed, Projection


@functools.cache
def _tenant_slug(schema_name: str) -> str:
    return str(Tenant.objects.filter(schema_name=schema_name).values_list("slug", flat=True).first() or "")


def _reacts_to(rec: Recorded[DomainEvent]) -> bool:
    """Events brought in by `import_events` are history whose reactions happened in the
    system they came from: sagas pass over them, unless the import asked them to react."""
    imported = rec.metadata.get("import")
    return not isinstance(imported, dict) or bool(imported.get("sagas"))


@dataclass(frozen=True, eq=False)
class SagaConsumer(Projection):
    KIND = "saga"

    saga: Saga = field(default=None)  # type: ignore[assignment]  # always given by `of`

    @classmethod
    def of(cls, saga: Saga) -> SagaConsumer:
        return cls(
            name=saga.name,
            version=1,
            read_models=(SagaInstance,),
            # The reactions stand in for handlers: they make event_types and the fingerprint.
            handlers=dict(saga.on_events),  # type: ignore[arg-type]
            saga=saga,
        )

    @property
    def command_types(self) -> frozenset[str]:
        return frozenset(cmd.TYPE for cmd in self.saga.on_commands)

    def event_filter(self) -> Q:
        # Command reactions trigger on the first event a handled command recorded.
        reacts = Q(type__in=self.event_types)
        if self.command_types:
            reacts |= Q(metadata__seq=1, metadata__command_type__in=sorted(self.command_types))
        return reacts

    def reads(self, event_type: str, metadata: Mapping[str, Any]) -> bool:
        return event_type in self.event_types or (
            metadata.get("seq") == 1 and metadata.get("command_type") in self.command_types
        )

    # -- one batch, inside the runner's transaction ------------------------------------------
    def apply_batch(self, records: Sequence[Recorded[DomainEvent]]) -> None:
        triggers = self._triggers(records)
        if not triggers:
            return
        instances = self._load_instances(triggers)
        issued: list[Command] = []
        for trigger in triggers:
            event = trigger.first_event if isinstance(trigger, HandledCommand) else trigger
            key = instance_key(self.saga, trigger) if self.saga.instance else ""
            instance = instances.get(key)
            state: SagaState = instance.state if instance is not None else {}
            # The reaction continues the trace of the event (or command) that triggered it,
            # and the commands it issues store this span's context: one trace per flow.
            with tracing.span(
                f"saga {self.saga.name} on {_trigger_type(trigger)}",
                parent=event.metadata.get("trace"),
                attributes={"intent.correlation_id": _correlation(event), "intent.position": event.position},
            ):
                try:
                    result = react(self.saga, trigger, state)
                except (OperationalError, InterfaceError):
                    raise  # the database went away: not this trigger's fault
                except Exception as exc:
                    raise HandlerFailed(event, exc) from exc
                if result is None:
                    continue
                reaction, commands = result
                issued.extend(
                    self._command_row(event, trigger.id, command_id, issue) for command_id, issue in commands
                )
            if self.saga.instance is not None:
                if instance is None:
                    instance = instances[key] = SagaInstance(saga=self.saga.name, key=key, state={})
                if reaction.state is not None:
                    instance.state = reaction.state
                instance.finished = instance.finished or reaction.finished
                instance.last_position = event.position
                instance.triggers += 1
                instance.correlation_id = _correlation(event)
        self._write(list(instances.values()), issued)

    def _triggers(
        self, records: Sequence[Recorded[DomainEvent]]
    ) -> list[Recorded[DomainEvent] | HandledCommand]:
        firsts = {
            UUID(str(rec.metadata["command_id"])): rec
            for rec in records
            if rec.metadata.get("seq") == 1 and rec.metadata.get("command_type") in self.command_types
        }
        registry = get_registry()
        rows = list(Command.objects.filter(id__in=list(firsts)))
        keys = Keyring(registry).prefetch("command", ((row.type, row.payload) for row in rows))
        handled = {
            row.id: HandledCommand(
                row.id,
                registry.parse_command(row.type, keys.reveal("command", row.type, row.payload)),
                firsts[row.id],
            )
            for row in rows
        }
        triggers: list[Recorded[DomainEvent] | HandledCommand] = []
        for rec in records:
            command_id = rec.metadata.get("command_id")
            if rec.metadata.get("seq") == 1 and command_id and UUID(str(command_id)) in handled:
                triggers.append(handled[UUID(str(command_id))])
            if type(rec.event) in self.saga.on_events and _reacts_to(rec):
                triggers.append(rec)
        return triggers

    def _load_instances(
        self, triggers: list[Recorded[DomainEvent] | HandledCommand]
    ) -> dict[str, SagaInstance]:
        if self.saga.instance is None:
            return {}
        keys = {instance_key(self.saga, trigger) for trigger in triggers}
        return {row.key: row for row in SagaInstance.objects.filter(saga=self.saga.name, key__in=keys)}

    def _command_row(
        self, event: Recorded[DomainEvent], trigger_id: UUID, command_id: UUID, issue: Issue
    ) -> Command:
        not_before: datetime | None = event.recorded_at + issue.delay if issue.delay > timedelta(0) else None
        metadata = CommandMetadata(
            tenant=_tenant_slug(current_schema()),
            source="saga",
            role=self.saga.role,
            correlation_id=_correlation(event),
            causation_id=trigger_id,
            saga=self.saga.name,
            trigger=SagaTrigger(id=trigger_id, position=event.position, type=event.type),
            trace=tracing.carrier(),
        )
        return new_command_row(
            issue.command,
            command_id=command_id,
            metadata=metadata,
            client_metadata={},
            not_before=not_before,
        )

    def _write(self, instances: list[SagaInstance], issued: list[Command]) -> None:
        if instances:
            SagaInstance.objects.bulk_create(
                instances,
                update_conflicts=True,
                unique_fields=["saga", "key"],
                update_fields=[
                    "state",
                    "finished",
                    "last_position",
                    "triggers",
                    "correlation_id",
                    "updated_at",
                ],
            )
        if not issued:
            return
        # An id already there was issued by an earlier, committed run of the same trigger:
        # ON CONFLICT DO NOTHING keeps that one. Waking it again is harmless (it is no
        # longer pending, or it is and should run).
        insert_commands(issued, ignore_conflicts=True)
        transaction.on_commit(functools.partial(lifecycle.commands_stored, issued, source="saga"))
        schema = current_schema()
        for row in issued:
            if row.not_before is not None:
                enqueue_on_commit(schema, row.id, row.not_before)
        if any(row.not_before is None for row in issued):
            transaction.on_commit(functools.partial(wake_commands, schema))  # one drain for all


def _trigger_type(trigger: Recorded[DomainEvent] | HandledCommand) -> str:
    return trigger.command.TYPE if isinstance(trigger, HandledCommand) else trigger.type


def _correlation(event: Recorded[Any]) -> UUID:
    """A flow keeps its correlation id across sagas; an event without one starts its own."""
    value = event.metadata.get("correlation_id")
    return UUID(str(value)) if value else event.id
