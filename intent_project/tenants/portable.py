"""A tenant as one portable file, and back: `export_tenant` / `import_tenant`.

The file is gzip-compressed JSON lines (format `intent-tenant-export`, version 1):

    {"kind": "header", "format": ..., "version": 1, "tenant": {...}, "registry": {...}, ...}
    {"kind": "erasure", "row": {...}}          data subjects erased (never a key)
    {"kind": "event", "row": {...}}            every event, in position order
    {"kind": "command", "row": {...}}          every command with its outcome
    {"kind": "saga", "row": {...}}             saga instances
    {"kind": "dead_letter", "row": {...}}
    {"kind": "snapshot", "row": {...}}
    {"kind": "manifest", "counts": {...}, "sha256": "<hex>"}

A row holds the model's columns by name (uuids and times as text). Personal data is
written opened, in clear (an erased subject's as the placeholder): the subjects' keys stay
in their tenant, so a file is as sensitive as the data in it, and an erasure after the
export does not reach it. The import seals it again with new keys, one per subject, and
keeps the erasures: an erased subject stays erased in the new tenant. `sha256` is the digest
of every line before the manifest, newline included. The export reads one snapshot of the
schema (REPEATABLE READ, read only), so an export taken while commands flow is a consistent
cut, and streams rows through server-side cursors: memory stays constant whatever the size.

The import reads the file once. It checks the header before creating anything, then
creates the tenant and loads every section with COPY while it checks every line (order,
every event type and stored schema version known to the registry) and, at the end, the
manifest's counts and checksum, all in one transaction: a refusal at any line leaves no
tenant, schema or row behind. In the same transaction it sets the sequences past the
imported ids and the sagas' checkpoints at the head (their reactions are already in the
file, as commands). After commit it builds every projection from the imported log, in
checkpointed batches as a worker would (an interrupted build is carried on by the workers).
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.http import FileResponse
from django_tenants.utils import schema_context

from commands_app.domain.errors import IntentError
from commands_app.models import Command
from commands_app.registry import get_registry
from events_app.models import Event, Snapshot, SubjectKey
from events_app.personal import FreshKeys, Keyring, Kind
from events_app.store import APPENDED_KEY
from intent_project import announcements, lifecycle
from intent_project.tenancy import use_public_schema
from intent_project.tenants.models import Tenant
from intent_project.tenants.services import create_tenant
from projections_app.models import DeadLetter, ProjectionState, SagaInstance
from projections_app.registry import get_sagas
from projections_app.runner import run_all

FORMAT = "intent-tenant-export"
VERSION = 1
CHUNK = 2000
# The sections in the order they are written and loaded; events first (the others refer to them).
SECTIONS: tuple[tuple[str, type[models.Model], tuple[str, ...]], ...] = (
    ("erasure", SubjectKey, ("subject",)),  # first: the import seals the events knowing them
    ("event", Event, ("position",)),
    ("command", Command, ("created_at", "id")),  # a saga's commands share their transaction's time
    ("saga", SagaInstance, ("id",)),
    ("dead_letter", DeadLetter, ("id",)),
    ("snapshot", Snapshot, ("id",)),
)
_MODELS = {kind: model for kind, model, _ in SECTIONS}
# Sections with personal data: kind -> (what it is, its type column, its data column, the
# column naming its aggregate).
_PERSONAL: dict[str, tuple[Kind, str, str, str]] = {
    "event": ("event", "type", "payload", "stream_id"),
    "command": ("command", "type", "payload", "aggregate_id"),
    "snapshot": ("state", "stream_type", "state", "stream_id"),
}


class ImportRefused(Exception):
    """The file cannot be imported; nothing was created."""


def _columns(model: type[models.Model]) -> list[str]:
    # A subject's key never leaves its tenant.
    return [
        f.attname for f in model._meta.concrete_fields if not (model is SubjectKey and f.attname == "key")
    ]


def _exported(model: type[models.Model]) -> models.QuerySet[Any]:
    if model is SubjectKey:
        return SubjectKey.objects.filter(key__isnull=True)  # the erasures; live keys stay here
    return model._default_manager.all()


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_DJANGO = DjangoJSONEncoder()


def _default(value: Any) -> Any:
    """What orjson does not write itself (decimals, durations, lazy text): as Django would."""
    return _DJANGO.default(value)


def _line(record: dict[str, Any]) -> bytes:
    """One line: times to the microsecond, uuids as text, UTF-8 as it is."""
    return orjson.dumps(record, default=_default, option=orjson.OPT_APPEND_NEWLINE)


@dataclass
class Progress:
    """What a command prints while it works (nothing unless given a callback)."""

    report: Callable[[str, int], None] | None = None
    every: int = 10_000
    done: dict[str, int] = field(default_factory=dict)

    def step(self, kind: str) -> None:
        count = self.done[kind] = self.done.get(kind, 0) + 1
        if self.report is not None and count % self.every == 0:
            self.report(kind, count)


# -- export ----------------------------------------------------------------------------------
def export_tenant(tenant: Tenant, out: IO[bytes], progress: Progress | None = None) -> dict[str, int]:
    """Write `tenant` to `out` (a binary file) as a compressed export; returns the counts."""
    progress = progress or Progress()
    digest = hashlib.sha256()
    counts = {kind: 0 for kind, _, _ in SECTIONS}
    registry = get_registry()
    with gzip.GzipFile(fileobj=out, mode="wb") as packed:

        def write(record: dict[str, Any], checked: bool = True) -> None:
            line = _line(record)
            if checked:
                digest.update(line)
            packed.write(line)

        with schema_context(tenant.schema_name), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            write(
                {
                    "kind": "header",
                    "format": FORMAT,
                    "version": VERSION,
                    "tenant": {"slug": tenant.slug, "name": tenant.name},
                    "exported_at": datetime.now(UTC),
                    "registry": {
                        "events": {t: cls.SCHEMA_VERSION for t, cls in sorted(registry.events.items())},
                        "commands": sorted(registry.commands),
                    },
                    "columns": {kind: _columns(model) for kind, model, _ in SECTIONS},
                }
            )
            for kind, model, order in SECTIONS:
                columns = _columns(model)
                rows = _exported(model).order_by(*order).values_list(*columns).iterator(chunk_size=CHUNK)
                for chunk in _chunks(rows, CHUNK):
                    records = [dict(zip(columns, values, strict=True)) for values in chunk]
                    if kind in _PERSONAL:
                        _open_personal(kind, records, registry)
                    for record in records:
                        write({"kind": kind, "row": record})
                        counts[kind] += 1
                        progress.step(kind)
        write({"kind": "manifest", "counts": counts, "sha256": digest.hexdigest()}, checked=False)
    return counts


def _open_personal(kind: str, records: list[dict[str, Any]], registry: Any) -> None:
    """Open the personal data of a chunk of rows, with one query for their keys."""
    what, type_column, data_column, _ = _PERSONAL[kind]
    keys = Keyring(registry).prefetch(what, ((r[type_column], r[data_column]) for r in records))
    for record in records:
        record[data_column] = keys.reveal(what, record[type_column], record[data_column])


def export_download(tenant: Tenant, *, operator: str) -> FileResponse:
    """The export as a download (the API's and the platform admin's): spooled to a file on
    disk, not held in memory however big the tenant, and logged as an operator action.
    Callers decide who may (superusers)."""
    spooled = tempfile.TemporaryFile()
    try:
        counts = export_tenant(tenant, spooled)
    finally:
        use_public_schema()
    lifecycle.operator_action("export_tenant", operator=operator, target=tenant.schema_name, counts=counts)
    spooled.seek(0)
    return FileResponse(
        spooled,
        as_attachment=True,
        filename=f"{tenant.slug}.intent.jsonl.gz",
        content_type="application/octet-stream",
    )


# -- reading and checking a file -------------------------------------------------------------
def _records(path: Path) -> Iterator[tuple[bytes, Any]]:
    try:
        with gzip.open(path, "rb") as packed:
            for number, line in enumerate(packed, start=1):
                try:
                    yield line, orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise ImportRefused(f"line {number} is not JSON") from None
    except (OSError, EOFError) as exc:
        raise ImportRefused(f"{path} is not a gzip-compressed export: {exc}") from None


class _Checker:
    """Checks a file line by line as it is read: the header first, every line's kind and
    section order, the events' order, types and stored schema versions, then (`finish`) the
    manifest's counts and checksum. The import loads while it checks, in one transaction,
    and a refusal at any line, the last included, rolls all of it back."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.header: dict[str, Any] | None = None
        self.manifest: dict[str, Any] | None = None
        self.counts = {kind: 0 for kind, _, _ in SECTIONS}
        self.order = [kind for kind, _, _ in SECTIONS]
        self.section = 0
        self.last_position = 0
        self.registry = get_registry()

    def check_header(self, line: bytes, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict) or record.get("kind") != "header" or record.get("format") != FORMAT:
            raise ImportRefused(f"not an {FORMAT} file (its first line is no header)")
        if record.get("version") != VERSION:
            raise ImportRefused(f"format version {record.get('version')!r}; this version reads {VERSION}")
        for kind, model, _ in SECTIONS:
            columns = record.get("columns", {}).get(kind)
            if columns is None and kind == "erasure":
                continue  # written before erasures existed: it has none
            if columns != _columns(model):
                raise ImportRefused(f"the {kind} columns differ from this version's")
        self.digest.update(line)
        self.header = record
        return record

    def check(self, line: bytes, record: Any) -> str | None:
        """The line's section, or None for the manifest."""
        kind = record.get("kind") if isinstance(record, dict) else None
        if self.manifest is not None:
            raise ImportRefused("lines after the manifest")
        if kind == "manifest":
            self.manifest = record
            return None
        self.digest.update(line)
        if kind not in self.order or not isinstance(record.get("row"), dict):
            raise ImportRefused(f"an unknown line kind {kind!r}")
        index = self.order.index(kind)
        if index < self.section:
            raise ImportRefused(f"a {kind} line after the {self.order[self.section]} section: out of order")
        self.section = index
        self.counts[kind] += 1
        if kind == "event":
            self._check_event(record["row"])
        return kind

    def _check_event(self, row: dict[str, Any]) -> None:
        position, type_name, stored = row.get("position"), row.get("type"), row.get("schema_version")
        if not isinstance(position, int) or position <= self.last_position:
            raise ImportRefused(f"event positions out of order at {position!r} (after {self.last_position})")
        self.last_position = position
        known = self.registry.events.get(type_name) if isinstance(type_name, str) else None
        if known is None:
            raise ImportRefused(f"event {position}: type {type_name!r} is not in the registry")
        if not isinstance(stored, int) or not 1 <= stored <= known.SCHEMA_VERSION:
            raise ImportRefused(
                f"event {position}: {type_name} schema version {stored!r}; the registry knows 1..{known.SCHEMA_VERSION}"
            )

    def finish(self) -> dict[str, Any]:
        if self.header is None:
            raise ImportRefused("the file is empty")
        if self.manifest is None:
            raise ImportRefused("no manifest: the file is cut short")
        if self.manifest.get("sha256") != self.digest.hexdigest():
            raise ImportRefused("the checksum does not match: the file was changed or damaged")
        listed = self.manifest.get("counts")
        # A file from before a section existed lists no count for it (and holds no line of it).
        counts = {k: n for k, n in self.counts.items() if n or not isinstance(listed, dict) or k in listed}
        if listed != counts:
            raise ImportRefused(
                f"the manifest counts {self.manifest.get('counts')} lines but the file holds {self.counts}"
            )
        return {**self.header, "counts": self.counts}


def check_file(path: Path) -> dict[str, Any]:
    """Read the whole file and refuse it if anything is wrong; returns its header and counts."""
    checker = _Checker()
    records = _records(path)
    for line, record in records:
        checker.check_header(line, record)
        break
    for line, record in records:
        checker.check(line, record)
    return checker.finish()


# -- import ----------------------------------------------------------------------------------
class _Loader:
    """One COPY per section, open while its lines stream in."""

    def __init__(self, cursor: Any, columns: dict[str, list[str]]) -> None:
        self.cursor = cursor
        self.columns = columns
        self.kind: str | None = None
        self.copy: Any = None
        self.as_json: set[int] = set()
        # The new tenant's subjects get new keys; the erased ones (the first section) none.
        self.keys = FreshKeys()

    def write(self, kind: str, row: dict[str, Any]) -> None:
        if kind != self.kind:
            self.close()
            self._open(kind)
        if kind == "erasure":
            self.keys.erased.add(str(row.get("subject")))
        elif kind in _PERSONAL:
            row = self._sealed(kind, row)
        values = [row[c] for c in self.columns[kind]]
        for index in self.as_json:
            if values[index] is not None:
                values[index] = orjson.dumps(values[index]).decode()
        self.copy.write_row(values)

    def _open(self, kind: str) -> None:
        # Rows as they are: ids, positions and times included (no auto_now, no sequence).
        model, columns = _MODELS[kind], self.columns[kind]
        fields = {f.attname: f for f in model._meta.concrete_fields}
        self.as_json = {i for i, c in enumerate(columns) if isinstance(fields[c], models.JSONField)}
        table = connection.ops.quote_name(model._meta.db_table)
        names = ", ".join(connection.ops.quote_name(c) for c in columns)
        self.kind = kind
        self._context = self.cursor.copy(f"COPY {table} ({names}) FROM STDIN")
        self.copy = self._context.__enter__()

    def _sealed(self, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        what, type_column, data_column, subject_column = _PERSONAL[kind]
        data = row.get(data_column)
        if not isinstance(data, dict):
            return row
        try:
            sealed = self.keys.seal(what, row.get(type_column, ""), data, row.get(subject_column))
        except IntentError as exc:  # an erased subject's data in clear, or no subject
            raise ImportRefused(f"a {kind} line: {exc.message}") from None
        return {**row, data_column: sealed}

    def close(self) -> None:
        if self.copy is not None:
            self._context.__exit__(None, None, None)
            self.copy = None

    def write_keys(self) -> None:
        """The keys made for the imported subjects, in the same transaction as their data."""
        self.close()
        if not self.keys.made:
            return
        table = connection.ops.quote_name(SubjectKey._meta.db_table)
        with self.cursor.copy(f"COPY {table} (subject, key) FROM STDIN") as copy:
            for subject, key in self.keys.made:
                copy.write_row((subject, key))


def import_tenant(
    path: Path,
    slug: str,
    name: str | None = None,
    progress: Progress | None = None,
    *,
    build: bool = True,
) -> Tenant:
    """Create tenant `slug` from an export; refuses (ImportRefused) with nothing created.

    The file is read once: checked as it is loaded, in one transaction with the tenant's
    creation, so a refusal at any line (the checksum at the end included) leaves nothing.
    The header is checked before anything is created. After commit, with `build`, every
    projection is built from the imported log here (in batches, each with its checkpoint,
    as a worker would: an interrupted build is resumed by the workers, woken by the sweep).
    """
    progress = progress or Progress()
    checker = _Checker()
    records = _records(path)
    first = next(records, None)
    if first is None:
        raise ImportRefused("the file is empty")
    header = checker.check_header(*first)
    with transaction.atomic():
        tenant = create_tenant(slug, name or header["tenant"].get("name") or slug)
        with schema_context(tenant.schema_name):
            with connection.cursor() as cursor:
                loader = _Loader(cursor.cursor, header["columns"])
                try:
                    for line, record in records:
                        kind = checker.check(line, record)
                        if kind is not None:
                            loader.write(kind, record["row"])
                            progress.step(kind)
                    loader.write_keys()
                finally:
                    loader.close()
            checker.finish()
            head = _after_load()
            # What the COPYs stored, announced as the store's appends and the bus's inserts
            # are: live streams, and the sweep (imported pending commands, dead letters).
            announcements.announce(tenant.schema_name, [APPENDED_KEY], mark=True)
    if build:
        with schema_context(tenant.schema_name):
            build_projections(head)
    return tenant


def _after_load() -> int:
    """Sequences past the imported ids and the sagas at the head; returns the head."""
    with connection.cursor() as cursor:
        for model in (Event, SagaInstance, DeadLetter, Snapshot):
            table, pk = model._meta.db_table, model._meta.pk.column
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), GREATEST(COALESCE(MAX({pk}), 0), 1), MAX({pk}) IS NOT NULL) FROM {table}",
                [table, pk],
            )
    head = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    # The sagas' reactions are in the file already (as the commands they issued).
    ProjectionState.objects.filter(name__in=[saga.name for saga in get_sagas()]).update(position=head)
    return int(head)


def build_projections(head: int) -> None:
    """Run every projection of the current schema up to `head` (or until none advances)."""
    while True:
        results = run_all(max_batches=50)
        states = ProjectionState.objects.values_list("position", "status")
        if all(position >= head for position, _ in states) or not any(r.advanced for r in results.values()):
            return
