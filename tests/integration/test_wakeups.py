"""Wake-up messages coalesce per tenant: a burst of commits queues one task, and anything
committed after the task started reading queues the next one."""

from __future__ import annotations

import uuid

from intent_project import wakeups


def test_a_burst_of_wake_ups_sends_one_message_until_the_task_starts(isolated_redis):
    schema = f"t_{uuid.uuid4().hex[:8]}"
    sent: list[str] = []
    for _ in range(5):
        wakeups.request("commands", schema, lambda: sent.append("drain"))
    assert sent == ["drain"]

    wakeups.started("commands", schema)
    wakeups.request("commands", schema, lambda: sent.append("drain"))
    wakeups.request("projections", schema, lambda: sent.append("project"))  # other kinds are separate
    assert sent == ["drain", "drain", "project"]


def test_a_failed_send_does_not_block_the_next_wake_up(isolated_redis):
    schema = f"t_{uuid.uuid4().hex[:8]}"
    sent: list[str] = []

    def broker_down() -> None:
        raise ConnectionError("broker down")

    wakeups.request("commands", schema, broker_down)  # logged, not raised
    wakeups.request("commands", schema, lambda: sent.append("drain"))
    assert sent == ["drain"]
