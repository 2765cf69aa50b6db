"""New tenant schemas copied from the migrated template schema's DDL, compiled once per template state.

The template (settings.TENANT_TEMPLATE_SCHEMA) is kept fully migrated. Its DDL is read
from the catalog once and compiled into a list of statements (a `Program`) that builds an
equal schema under any name: tables by `CREATE TABLE ... (LIKE ... INCLUDING ALL)`, the
constraints, indexes and identity sequences LIKE names differently renamed to the
template's names, foreign keys, functions, triggers and comments from their definitions,
and the template's rows (its migration history) copied. Replaying the program costs a few
dozen statements whatever the size of the catalog; django-tenants' `clone_schema` walked
the whole catalog in PL/pgSQL on every call and slowed with every tenant.

Names matter: migrations drop constraints by name, and the event store recognises a lost
version race by its unique constraint's name. So the first copy made from a freshly
compiled program is compared with the template (every name, column, default, constraint,
index, sequence, trigger, function and comment, plus the project's own `catalog()`), and
refused when anything differs: the error rolls the creating transaction back, leaving no
schema and no tenant row.

The program is keyed by the template's migration history and a cheap fingerprint of its
catalog rows, so a template that was migrated (or altered by hand) is read again before the
next copy. A checked program is stored in the public table `tenants_templatecopy` in the
transaction of the copy that proved it, and kept per process: a fresh process's first copy
loads it (one query) instead of compiling and checking again; only the first creation after
the template changed pays for both.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection, transaction

from intent_project.catalog import catalog
from intent_project.tenants.models import TemplateCopy

# Stands for the new schema's quoted name in compiled statements; a NUL never occurs in
# PostgreSQL text, so it cannot collide with anything a definition holds.
TARGET = "\x00target\x00"


class TemplateCopyError(Exception):
    """The template holds something the copy cannot reproduce, or the copy differs."""


@dataclass(frozen=True)
class RowCopy:
    """Statements that copy one template table's rows and carry its sequences on."""

    table: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Program:
    """The compiled copy of one state of the template."""

    key: tuple[str, str, str]
    schema: tuple[str, ...]  # tables, renames, sequences, functions, defaults
    rows: tuple[RowCopy, ...]  # run only for tables that hold rows at copy time
    finish: tuple[str, ...]  # foreign keys, triggers (after the rows: they must not fire), comments


_programs: dict[str, Program] = {}


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _fetch(sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _run(statements: tuple[str, ...] | list[str], target: str) -> None:
    """One round trip for the lot: a multi-statement string, no parameters."""
    if statements:
        with connection.cursor() as cursor:
            cursor.execute(";\n".join(s.replace(TARGET, _q(target)) for s in statements))


@contextlib.contextmanager
def _qualified_names() -> Iterator[None]:
    """Make pg_get_*def() and format_type() qualify every name with its schema.

    They leave out the schema of objects visible on the search path; with only pg_catalog
    on it, the template's objects (and public's) come out schema-qualified, so rewriting
    the template's name is all it takes to point a definition at the copy. Set for this
    transaction only and put back, so django-tenants' notion of the path stays true.
    """
    previous = _fetch("SELECT current_setting('search_path')")[0][0]
    _fetch("SELECT set_config('search_path', 'pg_catalog', true)")
    try:
        yield
    except BaseException:
        # An error has usually aborted the transaction, and its rollback puts the path back.
        with contextlib.suppress(DatabaseError):
            _fetch("SELECT set_config('search_path', %s, true)", [previous])
        raise
    _fetch("SELECT set_config('search_path', %s, true)", [previous])


def _retarget(text: str, schema: str) -> str:
    """`schema.` (bare or quoted) replaced by the TARGET placeholder."""
    pattern = rf'"{re.escape(schema)}"\.|(?<![\w$"]){re.escape(schema)}\.'
    return re.sub(pattern, TARGET + ".", text)


# --------------------------------------------------------------------------- the cache key


FINGERPRINT = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = %s),
     rel AS (SELECT c.oid, c.xmin FROM pg_class c, ns WHERE c.relnamespace = ns.oid)
SELECT md5(concat_ws('|',
    (SELECT string_agg(oid::text || ':' || xmin::text, ',' ORDER BY oid) FROM rel),
    (SELECT string_agg(a.attrelid::text || '.' || a.attnum || ':' || a.xmin::text, ','
                       ORDER BY a.attrelid, a.attnum)
       FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM rel) AND a.attnum > 0),
    (SELECT string_agg(d.oid::text || ':' || d.xmin::text, ',' ORDER BY d.oid)
       FROM pg_attrdef d WHERE d.adrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(k.oid::text || ':' || k.xmin::text, ',' ORDER BY k.oid)
       FROM pg_constraint k WHERE k.conrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(t.oid::text || ':' || t.xmin::text, ',' ORDER BY t.oid)
       FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(s.seqrelid::text || ':' || s.xmin::text, ',' ORDER BY s.seqrelid)
       FROM pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(p.oid::text || ':' || p.xmin::text, ',' ORDER BY p.oid)
       FROM pg_proc p, ns WHERE p.pronamespace = ns.oid),
    (SELECT string_agg(y.oid::text || ':' || y.xmin::text, ',' ORDER BY y.oid)
       FROM pg_type y, ns WHERE y.typnamespace = ns.oid),
    (SELECT string_agg(e.objoid::text || '.' || e.objsubid || ':' || e.xmin::text, ','
                       ORDER BY e.objoid, e.objsubid)
       FROM pg_description e
      WHERE e.objoid IN (SELECT oid FROM rel)
         OR e.objoid IN (SELECT p.oid FROM pg_proc p, ns WHERE p.pronamespace = ns.oid)
         OR e.objoid IN (SELECT t.oid FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rel))
         OR e.objoid IN (SELECT k.oid FROM pg_constraint k WHERE k.conrelid IN (SELECT oid FROM rel)))
))
"""

# Ids and timestamps too: unapplying and reapplying a migration changes the history.
MIGRATION_DIGEST = (
    "SELECT coalesce(md5(string_agg(concat_ws(':', id, app, name, applied), ',' ORDER BY id)), '') "
    "FROM {template}.django_migrations"
)


def cache_key(template: str) -> tuple[str, str, str]:
    """The template's name, its migration history and a fingerprint of its catalog rows.

    Any DDL inserts or updates catalog rows, and every new row version has a new xmin, so
    (oid, xmin) of the rows describing the template's relations, columns, defaults,
    constraints, triggers, sequences, functions, types and comments changes whenever the
    template does; VACUUM and ANALYZE update in place and leave it alone. Every lookup but
    pg_class's goes through a catalog index.
    """
    digest, fingerprint = _fetch(
        f"SELECT ({MIGRATION_DIGEST.format(template=_q(template))}), ({FINGERPRINT})", [template]
    )[0]
    return (template, str(digest), str(fingerprint))


# --------------------------------------------------------------------------- reading the template


def _relations(schema: str) -> dict[str, str]:
    return dict(
        _fetch(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s",
            [schema],
        )
    )


def _refuse_unsupported(template: str) -> None:
    """Kinds of objects the program does not build: better no copy than a partial one."""
    kinds = {"v": "view", "m": "materialized view", "f": "foreign table", "p": "partitioned table"}
    found = [f"{kinds[k]} {name}" for name, k in sorted(_relations(template).items()) if k in kinds]
    found += [
        f"type {name}"
        for (name,) in _fetch(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = %s AND t.typtype IN ('e', 'd', 'r', 'm') ORDER BY 1",
            [template],
        )
    ]
    found += [
        f"composite type {name}"
        for (name,) in _fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'c' ORDER BY 1",
            [template],
        )
    ]
    found += [
        f"inheritance {child} of {parent}"
        for child, parent in _fetch(
            "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s ORDER BY 1",
            [template],
        )
    ]
    if found:
        raise TemplateCopyError(
            f"the template schema {template} holds {', '.join(found)}, which the copy does not build; "
            "teach intent_project/tenants/template.py to, or set TENANT_CLONE_FROM_TEMPLATE=0"
        )


def _tables(schema: str) -> list[str]:
    # In creation order (oid), so LIKE picks the same names for generated objects each time.
    return [
        name
        for (name,) in _fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.oid",
            [schema],
        )
    ]


def _named_objects(schema: str) -> dict[tuple[str, str, str], list[str]]:
    """Constraints (but foreign keys) and the indexes of no constraint, by what they are.

    Key: (kind, table, definition without the object's own name and schema); value: the
    names, sorted (two objects may share a definition).
    """
    found: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for table, name, contype, definition in _fetch(
        """
        SELECT r.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
          FROM pg_constraint k
          JOIN pg_class r ON r.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
         WHERE n.nspname = %s AND k.contype <> 'f'
        """,
        [schema],
    ):
        found[(f"constraint {contype}", table, _retarget(definition, schema))].append(name)
    for table, name, definition in _fetch(
        """
        SELECT r.relname, i.relname,
               replace(pg_get_indexdef(i.oid), 'INDEX ' || quote_ident(i.relname) || ' ON ', 'INDEX ON ')
          FROM pg_index x
          JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_class r ON r.oid = x.indrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
         WHERE n.nspname = %s
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid AND k.conrelid = r.oid)
        """,
        [schema],
    ):
        found[("index", table, _retarget(definition, schema))].append(name)
    return {key: sorted(names) for key, names in found.items()}


def _owned_sequences(schema: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, column) -> (sequence, 'i' identity / 'a' serial) for the schema's sequences."""
    return {
        (table, column): (sequence, deptype)
        for sequence, deptype, table, column in _fetch(
            """
            SELECT s.relname, d.deptype, t.relname, a.attname
              FROM pg_class s
              JOIN pg_namespace n ON n.oid = s.relnamespace
              JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('i', 'a')
              JOIN pg_class t ON t.oid = d.refobjid
              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
             WHERE n.nspname = %s AND s.relkind = 'S'
            """,
            [schema],
        )
    }


def _renames(template: str, target: str) -> list[str]:
    """Statements giving the copy's constraints, indexes and identity sequences the
    template's names, matched by table and definition."""
    wanted, have = _named_objects(template), _named_objects(target)
    moves: list[tuple[str, str, str, str]] = []  # (kind, table, old, new)
    for key, names in wanted.items():
        current = have.get(key, [])
        if len(current) != len(names):
            continue  # the self-check reports it
        pending = sorted(set(current) - set(names))
        for old, new in zip(pending, sorted(set(names) - set(current)), strict=True):
            moves.append((key[0], key[1], old, new))
    identity = _owned_sequences(template)
    copied = _owned_sequences(target)
    for (table, column), (name, deptype) in identity.items():
        if deptype == "i" and (table, column) in copied and copied[(table, column)][0] != name:
            moves.append(("sequence", table, copied[(table, column)][0], name))

    taken = set(_relations(target)) | {name for names in have.values() for name in names}

    def rename(kind: str, table: str, old: str, new: str) -> str:
        if kind.startswith("constraint"):
            return f"ALTER TABLE {TARGET}.{_q(table)} RENAME CONSTRAINT {_q(old)} TO {_q(new)}"
        what = "SEQUENCE" if kind == "sequence" else "INDEX"
        return f"ALTER {what} {TARGET}.{_q(old)} RENAME TO {_q(new)}"

    # A name the copy already uses for something else goes through a temporary name first.
    first, then = [], []
    for n, (kind, table, old, new) in enumerate(moves):
        if new in taken:
            temporary = f"intent_copy_rename_{n}"
            first.append(rename(kind, table, old, temporary))
            then.append(rename(kind, table, temporary, new))
        else:
            first.append(rename(kind, table, old, new))
    return first + then


def _sequence_statements(template: str) -> tuple[list[str], list[str]]:
    """Sequences that are not identity columns' (LIKE makes those): created before the
    tables, and owned by their column after them."""
    owned = _owned_sequences(template)
    owners = {seq: (table, column) for (table, column), (seq, kind) in owned.items() if kind == "a"}
    identity = {seq for (seq, kind) in owned.values() if kind == "i"}
    before, after = [], []
    for name, type_name, start, increment, minimum, maximum, cache, cycle in _fetch(
        """
        SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
               s.seqmax, s.seqcache, s.seqcycle
          FROM pg_sequence s
          JOIN pg_class c ON c.oid = s.seqrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s ORDER BY c.oid
        """,
        [template],
    ):
        if name in identity:
            continue
        before.append(
            f"CREATE SEQUENCE {TARGET}.{_q(name)} AS {type_name} START {start} INCREMENT {increment} "
            f"MINVALUE {minimum} MAXVALUE {maximum} CACHE {cache} {'CYCLE' if cycle else 'NO CYCLE'}"
        )
        if name in owners:
            table, column = owners[name]
            after.append(f"ALTER SEQUENCE {TARGET}.{_q(name)} OWNED BY {TARGET}.{_q(table)}.{_q(column)}")
    return before, after


def _function_statements(template: str) -> list[str]:
    return [
        _retarget(definition, template)
        for (definition,) in _fetch(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.prokind IN ('f', 'p') ORDER BY p.oid",
            [template],
        )
    ]


def _default_statements(template: str) -> list[str]:
    """Defaults that name the template (a serial's sequence, a function of the template):
    LIKE copied them pointing at the template's objects; point them at the copy's."""
    out = []
    for table, column, expression in _fetch(
        """
        SELECT r.relname, a.attname, pg_get_expr(d.adbin, d.adrelid)
          FROM pg_attrdef d
          JOIN pg_class r ON r.oid = d.adrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
          JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.adnum
         WHERE n.nspname = %s AND a.attgenerated = ''
        """,
        [template],
    ):
        retargeted = _retarget(expression, template)
        if retargeted != expression:
            out.append(f"ALTER TABLE {TARGET}.{_q(table)} ALTER COLUMN {_q(column)} SET DEFAULT {retargeted}")
    return out


def _row_copies(template: str, tables: list[str]) -> tuple[RowCopy, ...]:
    """For each table: copy its rows (generated columns are computed again) and carry its
    sequences on from the template's, so the next row gets the next id, not a taken one."""
    columns: dict[str, list[str]] = defaultdict(list)
    for table, column in _fetch(
        """
        SELECT r.relname, a.attname
          FROM pg_attribute a
          JOIN pg_class r ON r.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
         WHERE n.nspname = %s AND r.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = ''
         ORDER BY a.attnum
        """,
        [template],
    ):
        columns[table].append(_q(column))
    sequences: dict[str, list[str]] = defaultdict(list)
    for (table, _column), (sequence, _kind) in _owned_sequences(template).items():
        sequences[table].append(sequence)
    copies = []
    for table in tables:
        names = ", ".join(columns[table])
        statements = [
            f"INSERT INTO {TARGET}.{_q(table)} ({names}) OVERRIDING SYSTEM VALUE "
            f"SELECT {names} FROM {_q(template)}.{_q(table)}"
        ]
        statements += [
            f"SELECT setval('{TARGET}.{_q(seq)}', last_value, is_called) FROM {_q(template)}.{_q(seq)}"
            for seq in sorted(sequences[table])
        ]
        copies.append(RowCopy(table, tuple(statements)))
    return tuple(copies)


def _finish_statements(template: str) -> list[str]:
    """Foreign keys (LIKE copies none), triggers and the comments LIKE does not copy."""
    out = [
        f"ALTER TABLE {TARGET}.{_q(table)} ADD CONSTRAINT {_q(name)} {_retarget(definition, template)}"
        for table, name, definition in _fetch(
            """
            SELECT r.relname, k.conname, pg_get_constraintdef(k.oid)
              FROM pg_constraint k
              JOIN pg_class r ON r.oid = k.conrelid
              JOIN pg_namespace n ON n.oid = r.relnamespace
             WHERE n.nspname = %s AND k.contype = 'f' ORDER BY k.oid
            """,
            [template],
        )
    ]
    for table, name, definition, enabled in _fetch(
        """
        SELECT r.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t
          JOIN pg_class r ON r.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
         WHERE n.nspname = %s AND NOT t.tgisinternal ORDER BY t.oid
        """,
        [template],
    ):
        out.append(_retarget(definition, template))
        state = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}.get(enabled)
        if state:
            out.append(f"ALTER TABLE {TARGET}.{_q(table)} {state} TRIGGER {_q(name)}")
    # LIKE copies the comments of columns, constraints and indexes; the others come here.
    for kind, identity, description in _fetch(
        """
        SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' ELSE 'SEQUENCE' END,
               quote_ident(n.nspname) || '.' || quote_ident(c.relname), e.description
          FROM pg_description e JOIN pg_class c ON c.oid = e.objoid AND e.classoid = 'pg_class'::regclass
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s AND e.objsubid = 0 AND c.relkind IN ('r', 'S')
        UNION ALL
        SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
               quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                   || '(' || pg_get_function_identity_arguments(p.oid) || ')', e.description
          FROM pg_description e JOIN pg_proc p ON p.oid = e.objoid AND e.classoid = 'pg_proc'::regclass
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = %s
        UNION ALL
        SELECT 'TRIGGER', quote_ident(t.tgname) || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname),
               e.description
          FROM pg_description e JOIN pg_trigger t ON t.oid = e.objoid AND e.classoid = 'pg_trigger'::regclass
          JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s
        UNION ALL
        SELECT 'CONSTRAINT', quote_ident(k.conname) || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname),
               e.description
          FROM pg_description e JOIN pg_constraint k ON k.oid = e.objoid AND e.classoid = 'pg_constraint'::regclass
          JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s AND k.contype = 'f'
        """,
        [template] * 4,
    ):
        literal = _fetch("SELECT quote_literal(%s)", [description])[0][0]
        out.append(f"COMMENT ON {kind} {_retarget(identity, template)} IS {literal}")
    return out


# --------------------------------------------------------------------------- describing a schema


def describe(schema: str) -> dict[str, Any]:
    """Everything the copy must reproduce, with the schema's own name written as TARGET,
    so two equal schemas under different names describe equal."""

    def rows(sql: str, placeholders: int = 1) -> list[tuple[Any, ...]]:
        return sorted(
            tuple(_retarget(v, schema) if isinstance(v, str) else v for v in row)
            for row in _fetch(sql, [schema] * placeholders)
        )

    with _qualified_names():
        return {
            "relations": rows(
                """SELECT c.relname, c.relkind, c.relpersistence, c.relrowsecurity,
                          coalesce(c.reloptions::text, ''), coalesce(c.relacl::text, '')
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relkind NOT IN ('t')"""
            ),
            "columns": rows(
                """SELECT r.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                          a.attidentity, a.attgenerated, coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                          coalesce(co.collname, ''), a.attstorage, a.attcompression,
                          row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum)
                     FROM pg_attribute a
                     JOIN pg_class r ON r.oid = a.attrelid
                     JOIN pg_namespace n ON n.oid = r.relnamespace
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                     LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
                    WHERE n.nspname = %s AND r.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped"""
            ),
            "constraints": rows(
                """SELECT r.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.convalidated
                     FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid
                     JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = %s"""
            ),
            "indexes": rows(
                """SELECT i.relname, pg_get_indexdef(i.oid)
                     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                     JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = %s"""
            ),
            "sequences": rows(
                """SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
                          s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                          coalesce((SELECT d.deptype::text || ' ' || t.relname || '.' || a.attname
                                      FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('i', 'a')), '')
                     FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"""
            ),
            "triggers": rows(
                """SELECT r.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
                     FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
                     JOIN pg_namespace n ON n.oid = r.relnamespace
                    WHERE n.nspname = %s AND NOT t.tgisinternal"""
            ),
            "functions": rows(
                """SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
                          coalesce(p.proconfig::text, ''), coalesce(p.proacl::text, '')
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = %s"""
            ),
            "statistics": rows(
                """SELECT s.stxname FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
                    WHERE n.nspname = %s"""
            ),
            "policies": rows(
                """SELECT r.relname, p.polname FROM pg_policy p JOIN pg_class r ON r.oid = p.polrelid
                     JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = %s"""
            ),
            "comments": rows(
                """SELECT pg_describe_object(e.classoid, e.objoid, e.objsubid), e.description
                     FROM pg_description e
                    WHERE (e.classoid = 'pg_class'::regclass AND e.objoid IN (
                              SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE n.nspname = %s))
                       OR (e.classoid = 'pg_proc'::regclass AND e.objoid IN (
                              SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                               WHERE n.nspname = %s))
                       OR (e.classoid = 'pg_constraint'::regclass AND e.objoid IN (
                              SELECT k.oid FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
                               WHERE n.nspname = %s))
                       OR (e.classoid = 'pg_trigger'::regclass AND e.objoid IN (
                              SELECT t.oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s))""",
                4,
            ),
        }


def differences(template: str, copy: str) -> list[str]:
    """What differs between the two schemas, as readable lines (empty when equal)."""
    want, have = describe(template), describe(copy)
    lines = []
    for part in want:
        missing = sorted(set(want[part]) - set(have[part]), key=str)
        extra = sorted(set(have[part]) - set(want[part]), key=str)
        lines += [f"{part}: missing {row!r}" for row in missing]
        lines += [f"{part}: unexpected {row!r}" for row in extra]
    if not lines and catalog(template) != catalog(copy):
        lines.append("catalog(): the tables' columns, indexes or triggers differ")
    return lines


# --------------------------------------------------------------------------- compiling and copying


def _compile_into(template: str, target: str, key: tuple[str, str, str]) -> Program:
    """Build `target` while reading the template; return what rebuilds it under any name."""
    _refuse_unsupported(template)
    with _qualified_names():
        tables = _tables(template)
        before, owned = _sequence_statements(template)
        like = [f"CREATE TABLE {TARGET}.{_q(t)} (LIKE {_q(template)}.{_q(t)} INCLUDING ALL)" for t in tables]
        _run([*before, *like], target)
        # LIKE names the copied indexes and unique constraints after their columns; what it
        # named differently is known once it has run (the same each time: the new schema
        # holds the same objects at each step).
        renames = _renames(template, target)
        functions = _function_statements(template)
        defaults = _default_statements(template)
        rows = _row_copies(template, tables)
        finish = _finish_statements(template)
    rest = (*renames, *functions, *owned, *defaults)
    _run(rest, target)
    program = Program(key, (*before, *like, *rest), rows, tuple(finish))
    _copy_rows(program, target)
    _run(program.finish, target)
    return program


def _copy_rows(program: Program, target: str) -> None:
    """The template's rows (its migration history; a seeded row if a migration adds one),
    for the tables that hold any now: one query to ask, one round trip to copy."""
    if not program.rows:
        return
    template = program.key[0]
    probes = ", ".join(f"EXISTS (SELECT 1 FROM {_q(template)}.{_q(c.table)})" for c in program.rows)
    occupied = _fetch(f"SELECT ARRAY[{probes}]")[0][0]
    _run(
        [s for copy, full in zip(program.rows, occupied, strict=True) if full for s in copy.statements],
        target,
    )


def _stored_key(key: tuple[str, str, str]) -> str:
    return f"{key[1]}:{key[2]}"


def _load(key: tuple[str, str, str]) -> Program | None:
    """The program stored for this state of the template, if a checked copy made one.
    Deleting the row makes the next creation compile and check a program again."""
    found = list(
        TemplateCopy.objects.filter(template=key[0], key=_stored_key(key)).values_list("program", flat=True)[:1]
    )
    if not found:
        return None
    data = json.loads(found[0])
    return Program(
        key,
        tuple(data["schema"]),
        tuple(RowCopy(table, tuple(statements)) for table, statements in data["rows"]),
        tuple(data["finish"]),
    )


def _store(program: Program) -> None:
    """Record a checked program, replacing the template's earlier one, in the caller's
    transaction: a copy rolled back proves nothing, and takes its row with it."""
    text = json.dumps(
        {
            "schema": program.schema,
            "rows": [[copy.table, copy.statements] for copy in program.rows],
            "finish": program.finish,
        }
    )
    TemplateCopy.objects.bulk_create(
        [TemplateCopy(template=program.key[0], key=_stored_key(program.key), program=text)],
        update_conflicts=True,
        unique_fields=["template"],
        update_fields=["key", "program", "verified_at"],
    )


def copy_template(template: str, target: str) -> None:
    """Create schema `target` equal to `template` (structure and rows), inside the caller's
    transaction. The caller holds the template lock and has brought the template up to date.
    """
    if not connection.in_atomic_block:
        raise TemplateCopyError("copy_template must run inside the creating transaction")
    key = cache_key(template)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {_q(target)}")
    program = _programs.get(template)
    if program is None or program.key != key:
        program = _load(key)
        if program is not None:
            _keep_after_commit(program)
    if program is not None:
        _run(program.schema, target)
        _copy_rows(program, target)
        _run(program.finish, target)
        return
    program = _compile_checked(template, target, key)
    _store(program)
    _keep_after_commit(program)


def _compile_checked(template: str, target: str, key: tuple[str, str, str]) -> Program:
    """Compile the program into the new schema `target` and compare the copy with the
    template: the program, or TemplateCopyError naming the differences."""
    program = _compile_into(template, target, key)
    found = differences(template, target)
    if found:
        raise TemplateCopyError(
            f"the copy of {template} as {target} differs from it, refused:\n  " + "\n  ".join(found[:40])
        )
    return program


# The schema a deploy-time check copies the template into; always rolled back.
PROBE_SCHEMA = "intent_tenant_template_probe"


def prepare_copy(template: str) -> bool:
    """Compile and check the program for the template as it is now, unless one is stored
    already. Run after the template is migrated (migrate_tenants), so that not even the first
    tenant created after a deploy pays for compiling and checking. The checked copy is made
    under a savepoint and rolled back; the program is stored in the caller's transaction.
    The caller holds the template lock. True when a program was compiled."""
    if not connection.in_atomic_block:
        raise TemplateCopyError("prepare_copy must run inside a transaction")
    key = cache_key(template)
    if _load(key) is not None:
        return False
    probe = transaction.savepoint()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {_q(PROBE_SCHEMA)}")
        program = _compile_checked(template, PROBE_SCHEMA, key)
    finally:
        transaction.savepoint_rollback(probe)
    _store(program)
    _keep_after_commit(program)
    return True


def _keep_after_commit(program: Program) -> None:
    """Kept in this process once a copy it built has committed: a copy rolled back proves
    nothing (and a stored program that failed is read again, not trusted from memory)."""

    def keep() -> None:
        _programs[program.key[0]] = program

    transaction.on_commit(keep)


def forget_programs() -> None:
    """Drop the compiled copies, this process's and the stored ones (tests; production
    never needs to: a changed template no longer matches its stored program)."""
    _programs.clear()
    TemplateCopy.objects.all().delete()
