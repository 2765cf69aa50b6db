"""Fix what check_projections finds: apply missing migrations, rebuild drifted projections.

Runs as the operator: the shell is already trusted, so the repair runs here at once where
the admin's action asks the operator policy and queues it on a worker.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from intent_project.management import add_tenant_arguments, selected_tenants
from projections_app.drift import reference_catalog
from projections_app.repair import repair_schema


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
                left = repair_schema(
                    tenant.schema_name, reference, label=tenant.slug, dry_run=dry, say=self.stdout.write
                )
                for finding in left:
                    if dry and (finding.kind == "unapplied_migration" or finding.projection):
                        continue  # part of the plan above
                    unresolved += 0 if dry else 1
                    self.stdout.write(
                        self.style.WARNING(f"manual {tenant.slug}: {finding.kind}: {finding.message}")
                    )
        if unresolved:
            raise SystemExit(1)
