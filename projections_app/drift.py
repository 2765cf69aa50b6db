"""Drift between what the code expects and what a tenant schema holds.

Expected tables are produced by Django itself in a reference schema (create_model for
every tenant model), so "expected" means exactly what the migrations would build. Each
tenant schema is compared with it table by table, plus its migration history and the
fingerprints of the code its read models were built by.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django_tenants.utils import schema_context

from projections_app.models import ProjectionState
from projections_app.registry import get_projections
from projections_app.schemas import (
    catalog,
    create_schema_with_models,
    drop_schema,
    scratch_schema_name,
    tenant_models,
)

IGNORED_TABLES = {"django_migrations"}


@dataclass(frozen=True)
class Finding:
    kind: str  # missing_table, extra_table, missing_column, extra_column, wrong_column,
    #            missing_index, extra_index, unapplied_migration, version_changed, code_changed
    message: str
    table: str = ""
    projection: str = ""  # the projection whose read model is affected, if any
    expected: Any = None
    actual: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def reference_catalog() -> Iterator[dict[str, dict[str, Any]]]:
    """The catalog of a scratch schema built from the models, dropped afterwards.

    Each run gets a schema name of its own: runs at once (threads of one web process, the
    admin action clicked twice, a management command beside it) used to share one name per
    process and drop or re-create each other's schema halfway ("schema already exists",
    "relation does not exist").
    """
    schema = scratch_schema_name("reference", uuid.uuid4().hex)
    try:
        create_schema_with_models(schema, tenant_models())
        yield catalog(schema)
    finally:
        _drop_scratch(schema)


def _drop_scratch(schema: str) -> None:
    """Drop the scratch schema, also after a failure inside it.

    Inside a transaction that the failure aborted, PostgreSQL refuses every statement
    until the rollback, and that rollback removes the schema created in it anyway; raising
    here would only hide the original error.
    """
    try:
        drop_schema(schema)
    except DatabaseError:
        if not connection.in_atomic_block:
            raise


def _table_owners() -> dict[str, str]:
    return {model._meta.db_table: p.name for p in get_projections() for model in p.read_models}


def compare_tables(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[Finding]:
    owners = _table_owners()
    findings: list[Finding] = []
    for table in sorted(set(expected) | set(actual)):
        if table in IGNORED_TABLES:
            continue
        owner = owners.get(table, "")
        if table not in actual:
            findings.append(Finding("missing_table", f"table {table} is missing", table, owner))
            continue
        if table not in expected:
            findings.append(
                Finding("extra_table", f"table {table} is not defined by any model", table, owner)
            )
            continue
        want, have = expected[table]["columns"], actual[table]["columns"]
        for column in sorted(set(want) | set(have)):
            if column not in have:
                findings.append(
                    Finding("missing_column", f"{table}.{column} is missing", table, owner, want[column])
                )
            elif column not in want:
                findings.append(
                    Finding(
                        "extra_column",
                        f"{table}.{column} is not in the model",
                        table,
                        owner,
                        None,
                        have[column],
                    )
                )
            elif want[column] != have[column]:
                findings.append(
                    Finding(
                        "wrong_column",
                        f"{table}.{column} is {have[column][0]}{' not null' if have[column][1] else ''}, "
                        f"expected {want[column][0]}{' not null' if want[column][1] else ''}",
                        table,
                        owner,
                        want[column],
                        have[column],
                    )
                )
        want_idx, have_idx = expected[table]["indexes"], actual[table]["indexes"]
        for shape in sorted(set(want_idx) - set(have_idx)):
            findings.append(
                Finding("missing_index", f"{table}: index {want_idx[shape]} is missing", table, owner, shape)
            )
        for shape in sorted(set(have_idx) - set(want_idx)):
            findings.append(
                Finding(
                    "extra_index",
                    f"{table}: index {have_idx[shape]} is not in the model",
                    table,
                    owner,
                    None,
                    shape,
                )
            )
    return findings


def unapplied_migrations() -> list[Finding]:
    """Migrations on disk that this (current) schema has not recorded as applied."""
    # Every migration on disk minus the recorded ones: also catches a gap in the middle of
    # an app's history (a later migration recorded, an earlier one not), which Django's
    # migration plan towards the leaf nodes would not report.
    loader = MigrationExecutor(connection).loader
    applied = set(loader.applied_migrations or {})
    missing = sorted(set(loader.graph.nodes) - applied)
    return [
        Finding(
            "unapplied_migration",
            f"migration {app_label}.{name} is not applied",
            expected=f"{app_label}.{name}",
        )
        for app_label, name in missing
    ]


def projection_findings() -> list[Finding]:
    findings = []
    states = {s.name: s for s in ProjectionState.objects.all()}
    for projection in get_projections():
        state = states.get(projection.name)
        if state is None:
            continue  # created (empty, current) on the next run; nothing is stale
        if state.version != projection.version:
            findings.append(
                Finding(
                    "version_changed",
                    f"{projection.name} was built by v{state.version}, the code is v{projection.version}",
                    projection=projection.name,
                    expected=projection.version,
                    actual=state.version,
                )
            )
        elif state.fingerprint != projection.fingerprint:
            findings.append(
                Finding(
                    "code_changed",
                    f"{projection.name}'s handlers or read-model shape changed since it was built",
                    projection=projection.name,
                    expected=projection.fingerprint,
                    actual=state.fingerprint or None,
                )
            )
    return findings


def check_schema(schema_name: str, reference: dict[str, dict[str, Any]]) -> list[Finding]:
    findings = compare_tables(reference, catalog(schema_name))
    state_table = ProjectionState._meta.db_table
    with schema_context(schema_name):
        findings += unapplied_migrations()
        # The checkpoint table itself must be intact before its rows can be read.
        if not any(f.table == state_table for f in findings):
            findings += projection_findings()
    return findings


def projections_to_rebuild(findings: list[Finding]) -> set[str]:
    """Drift that a rebuild (new tables from the models, replayed from the log) fixes."""
    rebuildable = {
        "missing_table",
        "missing_column",
        "extra_column",
        "wrong_column",
        "missing_index",
        "extra_index",
        "version_changed",
        "code_changed",
    }
    return {f.projection for f in findings if f.projection and f.kind in rebuildable}
