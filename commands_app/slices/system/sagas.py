"""Process managers of the system slice: the reference platform's system saga.

- After an `emitMultipleEvents` command is handled, log a message 3 seconds later.
- When the `multiEventEmitted` with index 2 is seen, log a message at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from commands_app.domain.messages import Recorded
from commands_app.domain.saga import HandledCommand, Issue, Saga, SagaState
from commands_app.slices.system.payloads import EmitMultipleEvents, LogMessage, MultiEventEmitted

FOLLOW_UP_DELAY = timedelta(seconds=3)


def after_multiple_events(handled: HandledCommand, state: SagaState) -> Sequence[Issue]:
    assert isinstance(handled.command, EmitMultipleEvents)
    message = f"{handled.command.count} events emitted by command {handled.id}"
    return [
        Issue(
            LogMessage(message=message, system_id=handled.first_event.stream_id),
            delay=FOLLOW_UP_DELAY,
        )
    ]


def on_multi_event_emitted(rec: Recorded[MultiEventEmitted], state: SagaState) -> Sequence[Issue]:
    if rec.event.index != 2:
        return []
    return [Issue(LogMessage(message=f"third event seen (event {rec.id})", system_id=rec.stream_id))]


SYSTEM_SAGA = Saga(
    name="system_saga",
    on_commands={EmitMultipleEvents: after_multiple_events},
    on_events={MultiEventEmitted: on_multi_event_emitted},
)

SAGAS: tuple[Saga, ...] = (SYSTEM_SAGA,)
