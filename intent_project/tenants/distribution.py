"""Which PostgreSQL features this database relies on, and which would stop Citus from
distributing the tenant schemas (schema-based sharding). docs/scaling.md has the audit
and the sources behind every verdict; `manage.py check_distribution` prints this report.

Two kinds of facts:

- read from the connected database's catalog (foreign keys, triggers, identity columns,
  inheritance, the citus extension), summarised over the tenant schemas with the template
  schema as the reference, so a thousand tenants give one line per feature;
- declared in `CODE_FEATURES` for what only the code shows (LOCK TABLE, advisory locks,
  LISTEN/NOTIFY, COPY, ...), each with the files that use it. A unit test greps the source
  for each feature's pattern and fails when a file uses one without being declared here,
  or is declared without using it (tests/unit/test_distribution_declarations.py).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from intent_project.tenants.models import Tenant


class Verdict(enum.StrEnum):
    WORKS = "works"
    SETTING = "works with a setting"
    BLOCKS = "blocks distribution"


@dataclass(frozen=True)
class CodeFeature:
    """A feature used by code, not visible in the catalog. `pattern` is what the unit test
    greps for (case-sensitive regex) in the project's Python and SQL sources."""

    key: str
    title: str
    verdict: Verdict
    note: str
    pattern: str
    files: tuple[str, ...]


# Keep in step with docs/scaling.md, "Audit". The test keeps `files` true.
CODE_FEATURES: tuple[CodeFeature, ...] = (
    CodeFeature(
        "append_lock",
        "LOCK TABLE events_app_event IN EXCLUSIVE MODE (per-tenant append lock)",
        Verdict.SETTING,
        "Citus propagates LOCK on a distributed table to every node with metadata; every "
        "writer must go through the coordinator so positions come from one sequence.",
        r"LOCK TABLE",
        ("events_app/store.py", "projections_app/rebuild.py"),
    ),
    CodeFeature(
        "advisory_locks",
        "Advisory locks (tenant creation around the template; the sweep marks' lock)",
        Verdict.WORKS,
        "Node-local, and taken in statements that name no tenant table, so on the coordinator "
        "every process connects to: tenant creations still serialise, and a writer's shared lock "
        "on its schema's sweep mark meets the sweep's exclusive one there.",
        r"pg_(try_)?advisory",
        (
            "intent_project/tenants/services.py",
            "intent_project/announcements.py",
            "intent_project/sweep_marks.py",
            # Its triggers took the lock, until projections_app 0008 dropped them.
            "projections_app/migrations/0007_sweep_marks.py",
        ),
    ),
    CodeFeature(
        "listen_notify",
        "LISTEN/NOTIFY wake-ups for ?wait, ?min_position and live streams",
        Verdict.SETTING,
        "Notifications are node-local. Every pg_notify() is sent in a statement that names no "
        "tenant table (intent_project/announcements.py), so it runs on the node the session is "
        "connected to; with every process connected to the coordinator (see append_lock), the "
        "listeners hear it. The log's old append trigger (events_app 0004) is dropped by 0006.",
        r"pg_notify|LISTEN \{",
        (
            "intent_project/announcements.py",
            "intent_project/notifications.py",
            "events_app/migrations/0004_append_notification.py",
        ),
    ),
    CodeFeature(
        "jsonb_to_recordset",
        "INSERT ... SELECT FROM jsonb_to_recordset(...) ON CONFLICT upserts",
        Verdict.WORKS,
        "INSERT ... SELECT into a distributed table is planned by Citus (pushed down or pulled "
        "through the coordinator); single-node queries have full SQL coverage.",
        r"jsonb_to_recordset\(%s",
        ("intent_project/rowsets.py", "projections_app/projectors/base.py"),
    ),
    CodeFeature(
        "copy",
        "COPY ... FROM STDIN (bulk import, tenant import)",
        Verdict.WORKS,
        "COPY into distributed tables is supported; defaults (the position) are evaluated on the "
        "coordinator, so currval() after the COPY still holds.",
        r"COPY \{",
        ("events_app/bulk.py", "intent_project/tenants/portable.py"),
    ),
    CodeFeature(
        "vacuum",
        "VACUUM of the subject keys after an erasure",
        Verdict.WORKS,
        "Citus propagates VACUUM on a distributed table to its shards.",
        r"VACUUM \{",
        ("events_app/personal.py",),
    ),
    CodeFeature(
        "skip_locked",
        "SELECT ... FOR UPDATE [SKIP LOCKED] on commands and checkpoints",
        Verdict.WORKS,
        "Row locks in single-schema (router) queries run unchanged on the schema's node.",
        r"skip_locked=True|SKIP LOCKED\)",
        ("commands_app/processing.py", "projections_app/runner.py"),
    ),
    CodeFeature(
        "search_path",
        "SET search_path per tenant (django-tenants, kept per connection)",
        Verdict.WORKS,
        "Citus resolves names on the coordinator and sends schema-qualified shard queries; "
        "its schema-based sharding tests switch tenants with SET search_path.",
        r"_get_cursor_search_paths",
        ("intent_project/db/base.py", "projections_app/schemas.py"),
    ),
    CodeFeature(
        "schema_clone",
        "New tenant schemas copied from the template's DDL (tenants/template.py)",
        Verdict.SETTING,
        "Unverified on Citus (CREATE TABLE ... LIKE a table of the template's own distributed "
        "schema, then its rows copied): set TENANT_CLONE_FROM_TEMPLATE=false, so new schemas are "
        "created by migrations, plain DDL that Citus distributes.",
        r"copy_template\(",
        ("intent_project/tenants/services.py", "intent_project/tenants/template.py"),
    ),
    CodeFeature(
        "scratch_schemas",
        "Rebuilds in a scratch schema, swapped in with ALTER TABLE ... SET SCHEMA",
        Verdict.WORKS,
        "Citus supports SET SCHEMA between distributed schemas (it moves the table to the "
        "target schema's node): correct, but the rebuilt tables are copied once more.",
        r"SET SCHEMA \{",
        ("projections_app/rebuild.py",),
    ),
)


@dataclass
class Finding:
    key: str
    title: str
    source: str  # "catalog" or "code"
    in_use: bool
    verdict: Verdict
    note: str
    where: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return self.in_use and self.verdict == Verdict.BLOCKS

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "source": self.source,
            "in_use": self.in_use,
            "verdict": self.verdict.value,
            "blocks": self.blocks,
            "note": self.note,
            "where": self.where,
        }


@dataclass
class Report:
    citus: dict[str, Any]
    reference: str | None
    schemas: list[str]
    findings: list[Finding]

    @property
    def blocking(self) -> list[str]:
        return [f.key for f in self.findings if f.blocks]

    def as_dict(self) -> dict[str, Any]:
        return {
            "citus": self.citus,
            "reference_schema": self.reference,
            "tenant_schemas": len(self.schemas),
            "features": [f.as_dict() for f in self.findings],
            "blocking": self.blocking,
        }


def _rows(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return list(cursor.fetchall())


# Each catalog query returns (schema, object) for the schemas in %s; an object is a short,
# schema-free name so schemas built alike give equal sets.
# Reported under the inspected schema on either end (from it, or into it from another).
_FOREIGN_KEYS_ACROSS = """
    SELECT CASE WHEN n.nspname = ANY(%s) THEN n.nspname ELSE fn.nspname END,
           CASE WHEN n.nspname = ANY(%s)
                THEN r.relname || '.' || c.conname || ' -> ' || fn.nspname || '.' || f.relname
                ELSE n.nspname || '.' || r.relname || '.' || c.conname || ' -> ' || f.relname END
      FROM pg_constraint c
      JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
      JOIN pg_class f ON f.oid = c.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace
     WHERE c.contype = 'f' AND fn.oid <> n.oid AND (n.nspname = ANY(%s) OR fn.nspname = ANY(%s))
"""
_FOREIGN_KEYS_WITHIN = """
    SELECT n.nspname, r.relname || '.' || c.conname
      FROM pg_constraint c
      JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
      JOIN pg_class f ON f.oid = c.confrelid
     WHERE c.contype = 'f' AND n.nspname = ANY(%s) AND f.relnamespace = n.oid
"""
_CHECKS = """
    SELECT n.nspname, r.relname || '.' || c.conname
      FROM pg_constraint c
      JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
     WHERE c.contype = 'c' AND n.nspname = ANY(%s)
"""
# tgtype bits (pg_trigger.h): 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate.
_TRIGGERS = """
    SELECT n.nspname, r.relname || '.' || t.tgname, t.tgtype::int, p.prosrc
      FROM pg_trigger t
      JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace n ON n.oid = r.relnamespace
      JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE NOT t.tgisinternal AND n.nspname = ANY(%s)
"""
_IDENTITY = """
    SELECT n.nspname, c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
       AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%')
"""
_INHERITANCE = """
    SELECT n.nspname, c.relname || ' inherits ' || pn.nspname || '.' || pc.relname
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
     WHERE n.nspname = ANY(%s) OR pn.nspname = ANY(%s)
"""
_FOREIGN_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'f' AND n.nspname = ANY(%s)
"""


def _shared_tables(schemas: list[str]) -> list[str]:
    """Tables of the public schema (the shared apps') that no inspected schema has a table of
    the same name of (django_migrations is in both): names a tenant trigger must not touch."""
    rows = _rows(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v')"
        " AND NOT EXISTS (SELECT 1 FROM pg_class t JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        "                  WHERE tn.nspname = ANY(%s) AND t.relname = c.relname)",
        [settings.PUBLIC_SCHEMA_NAME, schemas],
    )
    return [name for (name,) in rows]


def _summary(found: dict[str, set[str]], schemas: list[str], reference: str | None) -> dict[str, Any]:
    """Objects per schema, folded: the reference's objects, how many tenant schemas have the
    feature, and which (first few) differ from the reference."""
    tenants = [s for s in schemas if s != reference]
    expected = found.get(reference, set()) if reference else set()
    differing = [s for s in tenants if found.get(s, set()) != expected]
    summary: dict[str, Any] = {
        "reference": sorted(expected),
        "tenant_schemas_using": sum(1 for s in tenants if found.get(s)),
        "tenant_schemas_differing": len(differing),
    }
    if differing:
        summary["differing_examples"] = {s: sorted(found.get(s, set())) for s in differing[:5]}
    return summary


def _by_schema(rows: Iterable[tuple[Any, ...]], keep: Callable[[tuple[Any, ...]], bool] = lambda r: True):
    found: dict[str, set[str]] = {}
    for row in rows:
        if keep(row):
            found.setdefault(row[0], set()).add(row[1])
    return found


def _trigger_kinds(rows: list[tuple[Any, ...]], shared: list[str]) -> dict[str, dict[str, set[str]]]:
    names = "|".join(re.escape(name) for name in shared) or "(?!)"
    shared_ref = re.compile(rf"\b(?:{names})\b|\bpublic\s*\.", re.I)
    kinds: dict[str, dict[str, set[str]]] = {
        k: {} for k in ("row_triggers", "statement_triggers", "truncate_triggers", "notify", "shared")
    }
    for schema, name, tgtype, source in rows:
        if tgtype & 32:
            kind = "truncate_triggers"
        elif tgtype & 1:
            kind = "row_triggers"
        else:
            kind = "statement_triggers"
        kinds[kind].setdefault(schema, set()).add(name)
        if "pg_notify" in source or re.search(r"\bNOTIFY\b", source, re.I):
            kinds["notify"].setdefault(schema, set()).add(name)
        if shared_ref.search(source):
            kinds["shared"].setdefault(schema, set()).add(name)
    return kinds


def tenant_schemas() -> tuple[str | None, list[str]]:
    """The template (reference) schema when it exists, and every schema to inspect."""
    names = list(
        Tenant.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )
    template = settings.TENANT_TEMPLATE_SCHEMA
    exists = bool(_rows("SELECT 1 FROM pg_namespace WHERE nspname = %s", [template]))
    return (template, [template, *names]) if exists else (None, names)


def citus_status() -> dict[str, Any]:
    version = _rows("SELECT extversion FROM pg_extension WHERE extname = 'citus'", [])
    status: dict[str, Any] = {"installed": bool(version), "version": version[0][0] if version else None}
    if version:
        status["schema_based_sharding"] = _rows("SHOW citus.enable_schema_based_sharding", [])[0][0]
    return status


def inspect(schemas: list[str] | None = None, reference: str | None = None) -> Report:
    """The report for `schemas` (default: the template and every tenant schema)."""
    if schemas is None:
        reference, schemas = tenant_schemas()
    names = list(schemas)
    triggers = _trigger_kinds(_rows(_TRIGGERS, [names]), _shared_tables(names))
    identity_rows = _rows(_IDENTITY, [names])
    identity = _by_schema(identity_rows)
    narrow = _by_schema(identity_rows, keep=lambda row: not str(row[1]).endswith(" bigint"))
    catalog = [
        (
            "foreign_keys_across_schemas",
            "Foreign keys between a tenant schema and another schema (shared tables included)",
            Verdict.BLOCKS,
            "Citus allows foreign keys from a distributed schema only to the same schema or to "
            "reference tables, and none into it from another schema. Drop the constraint and "
            "keep the reference as a plain column (checked in code).",
            _by_schema(_rows(_FOREIGN_KEYS_ACROSS, [names] * 4)),
        ),
        (
            "foreign_keys_within_schema",
            "Foreign keys within a tenant schema",
            Verdict.WORKS,
            "Tables of one distributed schema are colocated; foreign keys between them are allowed.",
            _by_schema(_rows(_FOREIGN_KEYS_WITHIN, [names])),
        ),
        (
            "check_constraints",
            "CHECK constraints",
            Verdict.WORKS,
            "Created on the shard with the table; checked where the row is written.",
            _by_schema(_rows(_CHECKS, [names])),
        ),
        (
            "row_triggers",
            "Row triggers (the event log's immutability trigger)",
            Verdict.SETTING,
            "Citus up to 14.0 distributes a table with triggers only under "
            "citus.enable_unsafe_triggers = on (its main branch allows them in distributed "
            "schemas without it); the trigger then runs on the shard.",
            triggers["row_triggers"],
        ),
        (
            "statement_triggers",
            "Statement triggers (none left: the append notification and the sweep marks moved to code)",
            Verdict.SETTING,
            "As row triggers; they run on the shard's node (see trigger_notifications).",
            triggers["statement_triggers"],
        ),
        (
            "truncate_triggers",
            "TRUNCATE triggers (the event log refuses TRUNCATE)",
            Verdict.SETTING,
            "Kept on the coordinator's table, where TRUNCATE of a distributed table starts; Citus "
            "creates no TRUNCATE triggers on shards. Same setting as row triggers.",
            triggers["truncate_triggers"],
        ),
        (
            "trigger_notifications",
            "Triggers that call pg_notify / NOTIFY",
            Verdict.BLOCKS,
            "A trigger on a distributed-schema table runs on the worker holding the shard; its "
            "NOTIFY reaches only that node's listeners, not the web processes on the coordinator. "
            "Notify from the code on the coordinator instead, as the appends do "
            "(intent_project/announcements.py).",
            triggers["notify"],
        ),
        (
            "triggers_writing_shared_tables",
            "Triggers in tenant schemas that touch shared (public) tables",
            Verdict.BLOCKS,
            "The trigger runs on the worker, where a coordinator-local public table does not "
            "exist, and Citus refuses remote (distributed) queries from a trigger on a shard "
            "unless citus.allow_nested_distributed_execution is on. Do the write in application "
            "code on the coordinator instead, as the sweep marks are (intent_project/announcements.py).",
            triggers["shared"],
        ),
        (
            "identity_columns",
            "Identity / sequence columns (the log's position)",
            Verdict.WORKS,
            "bigint identity columns and sequences are supported; the value comes from the "
            "sequence of the node that plans the INSERT (see append_lock).",
            identity,
        ),
        (
            "narrow_sequences",
            "Identity / sequence columns narrower than bigint",
            Verdict.BLOCKS,
            "Citus encodes the node id in sequence values generated on each node, which needs "
            "bigint. Make the column bigint (BigAutoField).",
            narrow,
        ),
        (
            "inheritance",
            "Table inheritance across or within tenant schemas",
            Verdict.BLOCKS,
            "Tables in a distributed schema cannot inherit or be inherited.",
            _by_schema(_rows(_INHERITANCE, [names, names])),
        ),
        (
            "foreign_tables",
            "Foreign tables in tenant schemas",
            Verdict.BLOCKS,
            "Citus refuses foreign tables in a distributed schema.",
            _by_schema(_rows(_FOREIGN_TABLES, [names])),
        ),
    ]
    findings = [
        Finding(key, title, "catalog", any(found.values()), verdict, note, _summary(found, names, reference))
        for key, title, verdict, note, found in catalog
    ]
    findings += [
        Finding(f.key, f.title, "code", True, f.verdict, f.note, {"files": list(f.files)})
        for f in CODE_FEATURES
    ]
    if settings.TENANT_CLONE_FROM_TEMPLATE is False:
        for finding in findings:
            if finding.key == "schema_clone":
                finding.in_use = False
    return Report(citus_status(), reference, names, findings)


def schema_exists(name: str) -> bool:
    return bool(_rows("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name]))
