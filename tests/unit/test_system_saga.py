"""The reference's system saga, run in memory: delayed and immediate follow-up commands."""

from __future__ import annotations

import uuid
from datetime import timedelta

from commands_app.domain.flow import InMemoryFlow
from commands_app.domain.saga import issued_command_id
from commands_app.slices.system.payloads import EmitMultipleEvents, LogMessage
from commands_app.slices.system.sagas import FOLLOW_UP_DELAY

SYSTEM = uuid.UUID("00000000-0000-4000-8000-000000000002")


def test_after_emit_multiple_events_it_logs_a_message_three_seconds_later(registry):
    flow = InMemoryFlow(registry)
    sent = flow.send(EmitMultipleEvents(count=2, system_id=SYSTEM), role="tester")
    flow.run()

    (follow_up,) = flow.issued_by("system_saga")
    first_event = sent.events[0]
    assert isinstance(follow_up.command, LogMessage)
    assert follow_up.command.system_id == SYSTEM
    assert (
        follow_up.not_before
        == first_event.recorded_at + FOLLOW_UP_DELAY
        == first_event.recorded_at + timedelta(seconds=3)
    )
    assert follow_up.status == "processed"


def test_the_multi_event_with_index_2_triggers_an_immediate_message(registry):
    flow = InMemoryFlow(registry)
    sent = flow.send(EmitMultipleEvents(count=4, system_id=SYSTEM), role="tester")
    flow.run()

    issued = flow.issued_by("system_saga")
    immediate = [c for c in issued if c.not_before is None]
    delayed = [c for c in issued if c.not_before is not None]
    assert len(immediate) == 1 and len(delayed) == 1
    third = next(rec for rec in sent.events if rec.event.index == 2)
    assert immediate[0].ctx.causation_id == third.id
    assert delayed[0].ctx.causation_id == sent.id  # a command reaction is caused by the command


def test_issued_commands_carry_the_flow_and_ids_derived_from_the_trigger(registry):
    flow = InMemoryFlow(registry)
    sent = flow.send(EmitMultipleEvents(count=3, system_id=SYSTEM), role="tester")
    flow.run()

    for issued in flow.issued_by("system_saga"):
        assert issued.ctx.correlation_id == sent.id
        assert issued.id == issued_command_id("system_saga", issued.ctx.causation_id, "0")
        assert issued.ctx.role == "system" and issued.source == "saga"
    logged = [rec for rec in flow.events() if rec.type == "messageLogged"]
    assert len(logged) == 2


def test_the_saga_ignores_what_it_does_not_react_to(registry):
    flow = InMemoryFlow(registry)
    flow.send(EmitMultipleEvents(count=2, system_id=SYSTEM), role="tester")  # no index 2
    flow.send(LogMessage(message="unrelated", system_id=SYSTEM), role="tester")
    flow.run()
    assert len(flow.issued_by("system_saga")) == 1


def test_the_same_trigger_always_yields_the_same_command_id():
    trigger = uuid.uuid4()
    assert issued_command_id("s", trigger, "0") == issued_command_id("s", trigger, "0")
    assert issued_command_id("s", trigger, "0") != issued_command_id("s", trigger, "1")
    assert issued_command_id("s", trigger, "0") != issued_command_id("other", trigger, "0")
