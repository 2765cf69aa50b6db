"""Sagas (process managers): events, or handled commands, in; new commands out.

Plain Python, like the rest of a slice. A saga is a literal mapping from message class to
a reaction function. The platform runs each saga as a checkpointed consumer of the
tenant's event log (projections_app.sagas): the commands a batch of triggers issues, the
saga's state and its checkpoint commit in one transaction, and every issued command's id
is derived from (saga, trigger, key), so a trigger delivered twice issues nothing twice.

A reaction receives the trigger and the saga instance's state (a JSON-able dict, empty
for a new instance or a stateless saga) and returns the commands to issue, either as a
plain list of `Issue` or as a `Reaction` that also replaces the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid5

from commands_app.domain.messages import DomainCommand, DomainEvent, Recorded

SagaState = dict[str, Any]

# Fixed forever: changing it would re-issue every command of every saga on replay.
_ISSUED_COMMAND_NAMESPACE = UUID("3b8f5f0e-7a0c-4f43-9d55-2a43c1d8e6b1")


@dataclass(frozen=True)
class Issue:
    """A command a saga wants sent.

    `key` tells apart several commands issued for one trigger; with the saga's name and
    the trigger's id it makes the command id, so keep it stable for the same trigger
    (the position in the returned list is used when it is empty). `delay` counts from
    when the trigger was recorded, so a saga catching up after an outage does not wait
    again for time that has already passed.
    """

    command: DomainCommand
    key: str = ""
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class Reaction:
    issue: Sequence[Issue] = ()
    # The instance's new state; None keeps the current one.
    state: SagaState | None = None
    # The flow is over: the state is kept for inspection and marked finished.
    finished: bool = False


@dataclass(frozen=True)
class HandledCommand:
    """A command as a saga sees it: handled, with the first event it recorded.

    Commands that recorded nothing (failed, or no-op) are invisible to sagas: the event
    log is what sagas consume, and a failure recorded nowhere in it is not a fact.
    """

    id: UUID
    command: DomainCommand
    first_event: Recorded[DomainEvent]


EventReaction = Callable[[Recorded[Any], SagaState], "Reaction | Sequence[Issue]"]
CommandReaction = Callable[[HandledCommand, SagaState], "Reaction | Sequence[Issue]"]


@dataclass(frozen=True)
class Saga:
    name: str
    on_events: Mapping[type[DomainEvent], EventReaction] = field(default_factory=dict)
    on_commands: Mapping[type[DomainCommand], CommandReaction] = field(default_factory=dict)
    # Which saga instance (and state row) a trigger belongs to, e.g. the transfer id.
    # None: a stateless saga; every reaction sees an empty state.
    instance: Callable[[Recorded[Any] | HandledCommand], str] | None = None
    # The role recorded on the commands it issues (sagas are trusted platform code: what
    # they issue is not authorized per role, and they alone may issue internal commands).
    role: str = "system"


def issued_command_id(saga_name: str, trigger_id: UUID, key: str) -> UUID:
    """The id of the command `saga_name` issues for `trigger_id` under `key`: same inputs, same id."""
    return uuid5(_ISSUED_COMMAND_NAMESPACE, f"{saga_name}:{trigger_id}:{key}")


def as_reaction(result: Reaction | Sequence[Issue] | None) -> Reaction:
    if result is None:
        return Reaction()
    if isinstance(result, Reaction):
        return result
    return Reaction(issue=tuple(result))


def instance_key(saga: Saga, trigger: Recorded[Any] | HandledCommand) -> str:
    return saga.instance(trigger) if saga.instance is not None else ""


def react(
    saga: Saga, trigger: Recorded[Any] | HandledCommand, state: SagaState
) -> tuple[Reaction, list[tuple[UUID, Issue]]] | None:
    """Run the saga's reaction to one trigger, if it has one.

    Returns the reaction and the issued commands with their deterministic ids.
    """
    if isinstance(trigger, HandledCommand):
        on_command = saga.on_commands.get(type(trigger.command))
        if on_command is None:
            return None
        reaction = as_reaction(on_command(trigger, dict(state)))
        trigger_id = trigger.id
    else:
        on_event = saga.on_events.get(type(trigger.event))
        if on_event is None:
            return None
        reaction = as_reaction(on_event(trigger, dict(state)))
        trigger_id = trigger.id
    issued = [
        (issued_command_id(saga.name, trigger_id, issue.key or str(index)), issue)
        for index, issue in enumerate(reaction.issue)
    ]
    return reaction, issued
