"""The write side reaches the read side only through the port in intent_project.wakeups:
it asks which projections await the events it appended, and announces them after commit."""

from __future__ import annotations

from collections.abc import Iterator, Set

import pytest
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import CommandStatus
from intent_project import wakeups
from projections_app.models import ProjectionState
from projections_app.registry import get_consumers
from tests.integration.helpers import reload, submit


class Recording:
    """A read side that awaits one projection for every event and notes what it hears."""

    def __init__(self) -> None:
        self.asked: list[frozenset[str]] = []
        self.announced: list[tuple[str, frozenset[str]]] = []

    def awaiting(self, event_types: Set[str]) -> frozenset[str]:
        self.asked.append(frozenset(event_types))
        return frozenset({"recorder"})

    def events_appended(self, schema_name: str, event_types: Set[str]) -> None:
        self.announced.append((schema_name, frozenset(event_types)))

    def schema_created(self, schema_name: str) -> None:
        pass


@pytest.fixture
def read_side() -> Iterator[Recording]:
    registered = wakeups.read_side()
    recording = Recording()
    wakeups.connect_read_side(recording)
    try:
        yield recording
    finally:
        wakeups.connect_read_side(registered)


def test_the_write_side_asks_and_tells_the_read_side_through_the_port(fresh_tenant, read_side):
    cmd = submit(fresh_tenant, "emitMultipleEvents", {"count": 2})
    with schema_context(fresh_tenant.schema_name):
        assert processing.process(cmd.id) == processing.Outcome.CONSUMED
    assert read_side.asked == [frozenset({"multiEventEmitted"})]
    # Announced once, after the commit, with the schema bound before it.
    assert read_side.announced == [(fresh_tenant.schema_name, frozenset({"multiEventEmitted"}))]
    assert reload(fresh_tenant, cmd.id).awaiting_projections == ["recorder"]


def test_without_a_read_side_nothing_awaits_the_events(fresh_tenant):
    registered = wakeups.read_side()
    wakeups.connect_read_side(wakeups._NoReadSide())
    try:
        cmd = submit(fresh_tenant, "logMessage", {"message": "alone"})
        with schema_context(fresh_tenant.schema_name):
            assert processing.process(cmd.id) == processing.Outcome.PROCESSED
    finally:
        wakeups.connect_read_side(registered)
    assert reload(fresh_tenant, cmd.id).status == CommandStatus.PROCESSED


def test_a_new_tenant_has_the_checkpoint_of_every_consumer(fresh_tenant):
    with schema_context(fresh_tenant.schema_name):
        names = set(ProjectionState.objects.values_list("name", flat=True))
    assert names == {consumer.name for consumer in get_consumers()}
