"""The event log as live streams read it (intent_project/streams.py): the whole log after a
position, for a web process's shared feed of one tenant, and one subscriber's catch-up with
its filters and read scope in SQL.

Both run in a thread of the front door's pool, outside any request: each sets its tenant's
schema itself and gives the connection back as a request would (closed when broken or old).
Events are serialized exactly as the events API returns them (EventOut: upcast payloads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connection
from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django_tenants.utils import schema_context
from rest_framework.renderers import JSONRenderer

from commands_app.models import Command
from events_app.models import Event
from intent_project.streams import StreamedEvent


@contextmanager
def _in_schema(schema: str) -> Iterator[None]:
    """In `schema`, on a connection that is healthy (as around a request), unless the caller
    holds a transaction open (a test's, or a WSGI stream's own request)."""
    own = not connection.in_atomic_block
    if own:
        close_old_connections()
    try:
        with schema_context(schema):
            yield
    finally:
        if own:
            close_old_connections()


def with_sender(rows: QuerySet[Event]) -> QuerySet[Event]:
    """Each event with the user whose command recorded it (read scopes count it as theirs)."""
    sender = Command.objects.filter(pk=OuterRef("command_id")).annotate(
        user=KeyTextTransform("user_id", "metadata")
    )
    return rows.annotate(sent_by=Subquery(sender.values("user")[:1]))


def _streamed(rows: list[Event]) -> list[StreamedEvent]:
    from events_app.api import EventOut  # the API's serializer; events_app.api imports this module

    renderer = JSONRenderer()
    return [
        StreamedEvent(
            position=row.position,
            data=renderer.render(data),
            type=row.type,
            aggregate_type=row.stream_type,
            aggregate_id=str(row.stream_id),
            correlation_id=str(row.correlation_id) if row.correlation_id else None,
            sent_by=getattr(row, "sent_by", None),
        )
        for row, data in zip(rows, EventOut(rows, many=True).data, strict=True)
    ]


@dataclass(frozen=True)
class TenantLog:
    """One tenant's whole log (intent_project.streams.EventLog)."""

    schema: str

    def head(self) -> int:
        with _in_schema(self.schema):
            return int(Event.objects.aggregate(head=Max("position"))["head"] or 0)

    def read(self, after: int, limit: int) -> list[StreamedEvent]:
        with _in_schema(self.schema):
            rows = with_sender(Event.objects.filter(position__gt=after)).order_by("position")[:limit]
            return _streamed(list(rows))


@dataclass(frozen=True)
class Selection:
    """What one subscriber receives (intent_project.streams.EventSelection): the events its
    read scope shows (`scope` in SQL, `sees` in memory: commands_app.read_policy keeps the two
    alike) that match its filters (`filters`: StreamedEvent attribute -> value)."""

    schema: str
    scope: Q
    sees: Callable[[str, str | None], bool]
    filters: dict[str, str]
    columns: dict[str, Any]  # the same filters as Event lookups

    def accepts(self, event: StreamedEvent) -> bool:
        return self.sees(event.type, event.sent_by) and all(
            getattr(event, name) == value for name, value in self.filters.items()
        )

    def catch_up(self, after: int, upto: int, limit: int) -> list[StreamedEvent]:
        with _in_schema(self.schema):
            rows = Event.objects.filter(self.scope, position__gt=after, position__lte=upto, **self.columns)
            return _streamed(list(with_sender(rows).order_by("position")[:limit]))
