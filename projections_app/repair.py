"""Repair one tenant schema: apply missing migrations, then rebuild what drifted.

Shared by `manage.py repair_projections` and the admin's repair action (a Celery task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management import call_command
from django.db.migrations.exceptions import InconsistentMigrationHistory
from django_tenants.utils import schema_context

from projections_app.drift import Finding, check_schema, projections_to_rebuild
from projections_app.rebuild import rebuild


def repair_schema(
    schema_name: str,
    reference: dict[str, dict[str, Any]],
    *,
    label: str,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> list[Finding]:
    """Fix what can be fixed; return what still needs a human (everything, in a dry run)."""
    findings = check_schema(schema_name, reference)
    if not findings:
        say(f"ok     {label}")
        return []
    verb = "plan" if dry_run else "do"
    if any(f.kind == "unapplied_migration" for f in findings):
        say(f"{verb}   {label}: migrate_schemas --schema={schema_name}")
        if not dry_run:
            try:
                call_command("migrate_schemas", schema_name=schema_name, interactive=False, verbosity=0)
            except InconsistentMigrationHistory as exc:
                # A gap in the recorded history (a later migration applied, an earlier one
                # not) cannot be migrated past safely: report it for a human to resolve.
                say(f"manual {label}: {exc}")
                return check_schema(schema_name, reference)
            findings = check_schema(schema_name, reference)
    for name in sorted(projections_to_rebuild(findings)):
        say(f"{verb}   {label}: rebuild {name}")
        if not dry_run:
            with schema_context(schema_name):
                job = rebuild(name)
            say(f"       {job.events_done} events, {job.events_per_second:,.0f}/s, {job.status}")
    if dry_run:
        return findings
    return check_schema(schema_name, reference)
