"""A tenant as one portable file, and back: `export_tenant` / `import_tenant`.

The file is gzip-compressed JSON lines (format `intent-tenant-export`, version 1):

    {"kind": "header", "format": ..., "version": 1, "tenant": {...}, "registry": {...}, ...}
    {"kind": "event", "row": {...}}            every event, in position order
    {"kind": "command", "row": {...}}          every command with its outcome
    {"kind": "saga", "row": {...}}             saga instances
    {"kind": "dead_letter", "row": {...}}
    {"kind": "snapshot", "row": {...}}
    {"kind": "manifest", "counts": {...}, "sha256": "<hex>"}

A row holds the model's columns by name (uuids and times as text). `sha256` is the digest
of every line before the manifest, newline included. The export reads one snapshot of the
schema (REPEATABLE READ, read only), so an export taken while commands flow is a consistent
cut, and streams rows through server-side cursors: memory stays constant whatever the size.

The import validates the whole file first (checksum, order, every event type and stored
schema version known to the registry) and refuses a bad file before creating anything. It
then creates the tenant, loads every section with COPY, sets the
sagas' checkpoints at the head (their reactions are already in the file, as commands), and
builds every projection from the imported log, all in one transaction: a failure anywhere
leaves no tenant, schema or row behind.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django_tenants.utils import schema_context

from commands_app.models import Command
from commands_app.registry import get_registry
from events_app.models import Event, Snapshot
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
    ("event", Event, ("position",)),
    ("command", Command, ("created_at", "id")),  # a saga's commands share their transaction's time
    ("saga", SagaInstance, ("id",)),
    ("dead_letter", DeadLetter, ("id",)),
    ("snapshot", Snapshot, ("id",)),
)
_MODELS = {kind: model for kind, model, _ in SECTIONS}


class ImportRefused(Exception):
    """The file cannot be imported; nothing was created."""


def _columns(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


class _Encoder(DjangoJSONEncoder):
    """Django's, but times to the microsecond (its own keeps milliseconds): an import must
    give back the same rows, in the same order."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        return super().default(o)


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, cls=_Encoder, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


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
                rows = (
                    model._default_manager.order_by(*order).values_list(*columns).iterator(chunk_size=CHUNK)
                )
                for values in rows:
                    write({"kind": kind, "row": dict(zip(columns, values, strict=True))})
                    counts[kind] += 1
                    progress.step(kind)
        write({"kind": "manifest", "counts": counts, "sha256": digest.hexdigest()}, checked=False)
    return counts


# -- reading and checking a file -------------------------------------------------------------
def _records(path: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    try:
        with gzip.open(path, "rb") as packed:
            for number, line in enumerate(packed, start=1):
                try:
                    yield line, json.loads(line)
                except ValueError:
                    raise ImportRefused(f"line {number} is not JSON") from None
    except (OSError, EOFError) as exc:
        raise ImportRefused(f"{path} is not a gzip-compressed export: {exc}") from None


def check_file(path: Path) -> dict[str, Any]:
    """Read the whole file once and refuse it if anything is wrong; returns its header."""
    digest = hashlib.sha256()
    header: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    counts = {kind: 0 for kind, _, _ in SECTIONS}
    section = 0
    last_position = 0
    registry = get_registry()
    order = [kind for kind, _, _ in SECTIONS]
    for line, record in _records(path):
        kind = record.get("kind") if isinstance(record, dict) else None
        if manifest is not None:
            raise ImportRefused("lines after the manifest")
        if header is None:
            if kind != "header" or record.get("format") != FORMAT:
                raise ImportRefused(f"not an {FORMAT} file (its first line is no header)")
            if record.get("version") != VERSION:
                raise ImportRefused(f"format version {record.get('version')!r}; this version reads {VERSION}")
            header = record
            digest.update(line)
            continue
        if kind == "manifest":
            manifest = record
            continue
        digest.update(line)
        if kind not in order or not isinstance(record.get("row"), dict):
            raise ImportRefused(f"an unknown line kind {kind!r}")
        if order.index(kind) < section:
            raise ImportRefused(f"a {kind} line after the {order[section]} section: out of order")
        section = order.index(kind)
        counts[kind] += 1
        if kind == "event":
            row = record["row"]
            position, type_name, stored = row.get("position"), row.get("type"), row.get("schema_version")
            if not isinstance(position, int) or position <= last_position:
                raise ImportRefused(f"event positions out of order at {position!r} (after {last_position})")
            last_position = position
            known = registry.events.get(type_name)
            if known is None:
                raise ImportRefused(f"event {position}: type {type_name!r} is not in the registry")
            if not isinstance(stored, int) or not 1 <= stored <= known.SCHEMA_VERSION:
                raise ImportRefused(
                    f"event {position}: {type_name} schema version {stored!r}; the registry knows 1..{known.SCHEMA_VERSION}"
                )
    if header is None:
        raise ImportRefused("the file is empty")
    if manifest is None:
        raise ImportRefused("no manifest: the file is cut short")
    if manifest.get("sha256") != digest.hexdigest():
        raise ImportRefused("the checksum does not match: the file was changed or damaged")
    if manifest.get("counts") != counts:
        raise ImportRefused(f"the manifest counts {manifest.get('counts')} lines but the file holds {counts}")
    for kind, model, _ in SECTIONS:
        if header.get("columns", {}).get(kind) != _columns(model):
            raise ImportRefused(f"the {kind} columns differ from this version's")
    return {**header, "counts": counts}


# -- import ----------------------------------------------------------------------------------
def _copy(model: type[models.Model], rows: list[dict[str, Any]], columns: list[str]) -> None:
    """COPY rows into the model's table as they are: ids, positions and times included (no
    auto_now, no sequence)."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    fields = {f.attname: f for f in model._meta.concrete_fields}
    as_json = {name for name, f in fields.items() if isinstance(f, models.JSONField)}
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[c], cls=DjangoJSONEncoder, ensure_ascii=False)
                    if c in as_json and row[c] is not None
                    else row[c]
                    for c in columns
                ]
            )


def import_tenant(path: Path, slug: str, name: str | None = None, progress: Progress | None = None) -> Tenant:
    """Create tenant `slug` from an export; refuses (ImportRefused) with nothing created."""
    header = check_file(path)
    progress = progress or Progress()
    columns = header["columns"]
    with transaction.atomic():
        tenant = create_tenant(slug, name or header["tenant"].get("name") or slug)
        with schema_context(tenant.schema_name):
            batch: list[dict[str, Any]] = []
            current: str | None = None

            def flush() -> None:
                if not batch or current is None:
                    return
                _copy(_MODELS[current], batch, columns[current])
                batch.clear()

            for _, record in _records(path):
                kind = record["kind"]
                if kind in ("header", "manifest"):
                    continue
                if kind != current:
                    flush()
                    current = kind
                batch.append(record["row"])
                progress.step(kind)
                if len(batch) >= CHUNK:
                    flush()
            flush()
            _after_load()
    return tenant


def _after_load() -> None:
    """Sequences past the imported ids, sagas at the head, projections built from the log."""
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
    while True:
        results = run_all(max_batches=50)
        states = ProjectionState.objects.values_list("position", "status")
        if all(position >= head for position, _ in states) or not any(r.advanced for r in results.values()):
            return
