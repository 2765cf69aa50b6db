"""Fix what check_projections finds: apply missing migrations, rebuild drifted projections."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from intent_project.management import add_tenant_arguments, selected_tenants
from projections_app.drift import check_schema, projections_to_rebuild, reference_catalog
from projections_app.rebuild import rebuild


class Command(BaseCommand):
    help = "Apply missing migrations per schema, then rebuild (beside the live version) every projection whose tables or code drifted."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="Show the plan; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        dry = options["dry_run"]
        unresolved = 0
        with reference_catalog() as reference:
            for tenant in selected_tenants(options):
                findings = check_schema(tenant.schema_name, reference)
                if not findings:
                    self.stdout.write(f"ok     {tenant.slug}")
                    continue
                if any(f.kind == "unapplied_migration" for f in findings):
                    self.stdout.write(
                        f"{'plan' if dry else 'do'}   {tenant.slug}: migrate_schemas --schema={tenant.schema_name}"
                    )
                    if not dry:
                        call_command(
                            "migrate_schemas", schema_name=tenant.schema_name, interactive=False, verbosity=0
                        )
                        findings = check_schema(tenant.schema_name, reference)
                for name in sorted(projections_to_rebuild(findings)):
                    self.stdout.write(f"{'plan' if dry else 'do'}   {tenant.slug}: rebuild {name}")
                    if not dry:
                        with schema_context(tenant.schema_name):
                            job = rebuild(name)
                        self.stdout.write(
                            f"       {job.events_done} events, {job.events_per_second:,.0f}/s, {job.status}"
                        )
                if not dry:
                    findings = check_schema(tenant.schema_name, reference)
                    for finding in findings:
                        unresolved += 1
                        self.stdout.write(
                            self.style.WARNING(f"manual {tenant.slug}: {finding.kind}: {finding.message}")
                        )
                else:
                    for finding in findings:
                        if finding.kind not in ("unapplied_migration",) and not finding.projection:
                            self.stdout.write(f"manual {tenant.slug}: {finding.kind}: {finding.message}")
        if unresolved:
            raise SystemExit(1)
