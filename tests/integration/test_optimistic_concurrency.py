"""Two commands on one aggregate never share a version; the loser re-decides on fresh state."""

from __future__ import annotations

import threading
import uuid

from django.db import connections
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import Command, CommandStatus
from events_app.models import Event
from tests.integration.helpers import submit, test_payload

WRITERS = 6
COMMANDS_EACH = 8


def test_concurrent_commands_on_one_aggregate_get_distinct_versions_and_fresh_decisions(
    fresh_tenant, settings
):
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 0
    settings.COMMAND_MAX_RETRIES = 1000
    system_id = uuid.uuid4()
    batches = [
        [
            submit(fresh_tenant, "executeTest", test_payload(system_id=system_id)).id
            for _ in range(COMMANDS_EACH)
        ]
        for _ in range(WRITERS)
    ]
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(ids):
        try:
            barrier.wait()
            with schema_context(fresh_tenant.schema_name):
                for command_id in ids:
                    # A worker sends a postponed command again (conflicts exhausted); so do we.
                    while isinstance(processing.process(command_id), processing.Postponed):
                        pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(ids,)) for ids in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = WRITERS * COMMANDS_EACH
    with schema_context(fresh_tenant.schema_name):
        events = list(Event.objects.filter(stream_id=system_id).order_by("version"))
        statuses = set(Command.objects.filter(aggregate_id=system_id).values_list("status", flat=True))
    assert [e.version for e in events] == list(range(1, total + 1))
    # Every decision saw the state left by all earlier events: the counter in each event
    # equals its version, which a decision on stale state would break.
    assert [e.payload["numberExecutedTests"] for e in events] == list(range(1, total + 1))
    assert statuses == {CommandStatus.CONSUMED}
