"""Bulk import of events from outside (a migration from another system): `import_events`.

The file is JSON lines, plain or gzip-compressed (told apart by its first bytes), one
event per line:

    {"stream_type": "account", "stream_id": "<uuid>", "version": 1,
     "type": "accountOpened", "payload": {...},
     "schema_version": 1, "id": "<uuid>", "metadata": {...}, "occurred_at": "<iso time>"}

`stream_type`, `stream_id`, `version`, `type` and `payload` are required; the rest is
optional (`schema_version` defaults to the registry's current one, `id` to a new uuid).
`version` is the version the event takes in its stream, which is how optimistic
concurrency is checked per stream: a stream's first line in the file must follow the
stream's head in the tenant (version 1 for a new stream) and its lines must follow one
another (2, 3, ...). `occurred_at` (the time in the source system) is kept in the event's
metadata; `recorded_at` is the time of the import.

Every line is checked as the command bus checks what it records: the stream type is a
registered aggregate, the event type and stored schema version are known, the payload
parses (upcast to the current version, then validated). Any refusal, of any line, and
nothing is appended: the whole file goes in one transaction under the tenant's append
lock (appends by commands wait for it; reads do not), loaded with COPY. Running the same
file twice is refused by the same version check, so an import is never done twice.

Imported events are history: sagas do not react to them (their reactions happened in the
source system) unless the import is run with `react=True`. Projections apply them as
they apply any event, woken after commit.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pydantic import ValidationError

from commands_app.domain.errors import IntentError
from commands_app.registry import get_registry
from events_app.models import Event
from events_app.personal import Keyring
from events_app.store import _LOCK, _VERSION_CONSTRAINT, APPENDED_KEY
from intent_project import announcements, wakeups

REQUIRED = ("stream_type", "stream_id", "version", "type", "payload")
OPTIONAL = ("schema_version", "id", "metadata", "occurred_at")
# Metadata the platform writes itself: a line may not claim to come from a command.
RESERVED_METADATA = frozenset({"command_id", "command_type", "seq", "import"})
# The columns COPY fills, in order; the position comes from the log's sequence.
_COLUMNS = (
    "id",
    "stream_type",
    "stream_id",
    "version",
    "type",
    "schema_version",
    "payload",
    "metadata",
    "correlation_id",
    "causation_id",
    "recorded_at",
)
REPORT_CONFLICTS = 10


class EventsRefused(Exception):
    """The file cannot be imported; nothing was appended."""


@dataclass
class Imported:
    """What an import appended."""

    id: uuid.UUID
    events: int = 0
    streams: int = 0
    new_streams: int = 0
    first_position: int | None = None
    last_position: int | None = None
    types: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": str(self.id),
            "events": self.events,
            "streams": self.streams,
            "new_streams": self.new_streams,
            "positions": [self.first_position, self.last_position],
        }


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for every non-blank line of a plain or gzip file."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    try:
        with gzip.GzipFile(path, "rb") if compressed else path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except ValueError:
                    raise EventsRefused(f"line {number} is not JSON") from None
    except (OSError, EOFError) as exc:
        raise EventsRefused(f"{path} cannot be read: {exc}") from None


def _uuid(value: Any, what: str, number: int) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise EventsRefused(f"line {number}: {what} {value!r} is not a uuid") from None


def _optional_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


class _Checker:
    """Checks line after line; keeps one entry per stream (the only state that grows with
    the file)."""

    def __init__(self, import_id: uuid.UUID, react: bool, now: datetime, keys: Keyring) -> None:
        self.registry = get_registry()
        self.keys = keys  # every subject's key, fetched before the COPY (none can be asked during it)
        self.import_mark = {"id": str(import_id), "sagas": react}
        self.now = now
        # (stream_type, stream_id) -> [first version in the file, last version so far]
        self.streams: dict[tuple[str, uuid.UUID], list[int]] = {}

    def row(self, number: int, line: Any) -> list[Any]:
        if not isinstance(line, dict):
            raise EventsRefused(f"line {number}: an event is a JSON object")
        missing = [key for key in REQUIRED if key not in line]
        if missing:
            raise EventsRefused(f"line {number}: missing {', '.join(missing)}")
        unknown = sorted(set(line) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            raise EventsRefused(f"line {number}: unknown field(s) {', '.join(unknown)}")
        stream_type, type_name = line["stream_type"], line["type"]
        if stream_type not in self.registry.aggregates:
            raise EventsRefused(
                f"line {number}: stream type {stream_type!r} is not a registered aggregate "
                f"({', '.join(sorted(self.registry.aggregates))})"
            )
        known = self.registry.events.get(type_name) if isinstance(type_name, str) else None
        if known is None:
            raise EventsRefused(f"line {number}: event type {type_name!r} is not in the registry")
        if self.registry.slice_of.get(type_name) != self.registry.slice_of.get(stream_type):
            raise EventsRefused(f"line {number}: {type_name} is not an event of {stream_type} streams")
        stored = line.get("schema_version", known.SCHEMA_VERSION)
        if type(stored) is not int or not 1 <= stored <= known.SCHEMA_VERSION:
            raise EventsRefused(
                f"line {number}: {type_name} schema version {stored!r}; the registry knows 1..{known.SCHEMA_VERSION}"
            )
        payload = line["payload"]
        if not isinstance(payload, dict):
            raise EventsRefused(f"line {number}: payload is a JSON object")
        try:
            self.registry.parse_event(type_name, stored, dict(payload))
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            raise EventsRefused(f"line {number}: the {type_name} payload is not valid: {exc}") from None
        stream_id = _uuid(line["stream_id"], "stream_id", number)
        version = line["version"]
        if type(version) is not int or version < 1:
            raise EventsRefused(f"line {number}: version {version!r} is not a positive integer")
        seen = self.streams.get((stream_type, stream_id))
        if seen is None:
            self.streams[(stream_type, stream_id)] = [version, version]
        elif version != seen[1] + 1:
            raise EventsRefused(
                f"line {number}: {stream_type}/{stream_id} version {version} does not follow its version {seen[1]}"
            )
        else:
            seen[1] = version
        # A duplicate id, in the file or against the log, is the unique constraint's to catch
        # (a set of every id would grow with the file).
        event_id = _uuid(line["id"], "id", number) if "id" in line else uuid.uuid4()
        metadata = line.get("metadata", {})
        if not isinstance(metadata, dict):
            raise EventsRefused(f"line {number}: metadata is a JSON object")
        reserved = sorted(RESERVED_METADATA & set(metadata))
        if reserved:
            raise EventsRefused(
                f"line {number}: metadata key(s) {', '.join(reserved)} are the platform's own"
            )
        metadata = {**metadata, "import": self.import_mark}
        if "occurred_at" in line:
            occurred = line["occurred_at"]
            parsed = parse_datetime(occurred) if isinstance(occurred, str) else None
            if parsed is None or parsed.tzinfo is None:
                raise EventsRefused(
                    f"line {number}: occurred_at {occurred!r} is not an ISO time with a time zone"
                )
            metadata["occurred_at"] = parsed.isoformat()
        try:
            payload = self.keys.seal("event", type_name, payload, stream_id)
        except IntentError as exc:  # an erased subject's personal data, or no subject
            raise EventsRefused(f"line {number}: {exc.message}") from None
        return [
            event_id,
            stream_type,
            stream_id,
            version,
            type_name,
            stored,
            json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False),
            json.dumps(metadata, cls=DjangoJSONEncoder, ensure_ascii=False),
            _optional_uuid(metadata.get("correlation_id")),
            _optional_uuid(metadata.get("causation_id")),
            self.now,
        ]


def _conflicts(first_position: int, streams: dict[tuple[str, uuid.UUID], list[int]]) -> list[str]:
    """Streams whose head before the import is not their first imported version less one."""
    table = connection.ops.quote_name(Event._meta.db_table)
    keys = list(streams)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT f.stream_type, f.stream_id, f.first_version,
                   (SELECT coalesce(max(e.version), 0) FROM {table} e
                     WHERE e.stream_id = f.stream_id AND e.stream_type = f.stream_type
                       AND e.position < %s) AS head
              FROM unnest(%s::text[], %s::uuid[], %s::int[]) AS f(stream_type, stream_id, first_version)
            """,
            [first_position, [t for t, _ in keys], [i for _, i in keys], [streams[k][0] for k in keys]],
        )
        return [
            f"{stream_type}/{stream_id} is at version {head}, the file starts it at {first}"
            for stream_type, stream_id, first, head in cursor.fetchall()
            if head != first - 1
        ]


def _subjects(path: Path, keys: Keyring) -> set[str]:
    """The data subjects of the file's personal events (a first pass over the file: during
    the COPY the connection can ask nothing else, the keys included). Lines that do not
    parse are left for the checking pass to refuse."""
    found: set[str] = set()
    for _, line in _lines(path):
        if isinstance(line, dict) and line.get("type") in keys.registry.personal_events:
            payload = line.get("payload")
            if not isinstance(payload, dict):
                continue
            try:
                subject = keys.subject("event", line["type"], payload, uuid.UUID(str(line.get("stream_id"))))
            except (IntentError, ValueError, TypeError, AttributeError):
                continue
            if subject is not None:
                found.add(subject)
    return found


def import_events(path: Path, schema_name: str, *, react: bool = False) -> Imported:
    """Append the events of `path` to the current tenant schema's log, or refuse them all."""
    result = Imported(id=uuid.uuid4())
    table = connection.ops.quote_name(Event._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    keys = Keyring()
    checker = _Checker(result.id, react, timezone.now(), keys)
    try:
        with transaction.atomic():
            if keys.registry.personal_events:
                keys.ensure(_subjects(path, keys))  # in the import's transaction: refused, no keys
            with connection.cursor() as cursor:
                # See PostgresEventStore.lock_for_append: positions in commit order.
                cursor.execute(_LOCK)
                with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for number, line in _lines(path):
                        row = checker.row(number, line)
                        copy.write_row(row)
                        result.types.add(row[4])
                        result.events += 1
                if not result.events:
                    raise EventsRefused("the file holds no events")
                # Under the append lock nobody else draws from the log's sequence: the
                # import's positions are the last `events` it handed out. The import's
                # announcement rides along (the store's append sends the same).
                cursor.execute(
                    *announcements.followed(
                        "SELECT currval(pg_get_serial_sequence(%s, 'position'))",
                        [Event._meta.db_table],
                        schema_name,
                        [APPENDED_KEY],
                        mark=True,
                    )
                )
                result.last_position = int(cursor.fetchone()[0])
                result.first_position = result.last_position - result.events + 1
            conflicts = _conflicts(result.first_position, checker.streams)
            if conflicts:
                shown = "; ".join(conflicts[:REPORT_CONFLICTS])
                more = (
                    f" (and {len(conflicts) - REPORT_CONFLICTS} more)"
                    if len(conflicts) > REPORT_CONFLICTS
                    else ""
                )
                raise EventsRefused(f"{len(conflicts)} stream(s) moved: {shown}{more}")
    except (IntegrityError, psycopg.errors.IntegrityError) as exc:
        # COPY runs on the driver's cursor: its errors come as psycopg's own, not Django's.
        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        constraint = getattr(getattr(cause, "diag", None), "constraint_name", None) or ""
        if constraint == _VERSION_CONSTRAINT:
            raise EventsRefused(
                "a stream version in the file is taken in the tenant already (was the file imported before?)"
            ) from None
        if constraint.endswith("_id_key"):
            raise EventsRefused(
                "an event id appears twice in the file, or exists in the tenant already"
            ) from None
        raise
    result.streams = len(checker.streams)
    result.new_streams = sum(1 for first, _ in checker.streams.values() if first == 1)
    wakeups.read_side().events_appended(schema_name, result.types)
    return result
