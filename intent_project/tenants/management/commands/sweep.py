from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from intent_project.management import add_tenant_arguments, selected_tenants
from intent_project.tasks import sweep_schema


class Command(BaseCommand):
    help = "Re-send wake-ups for pending commands and lagging projections now (what beat does every few seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        for tenant in selected_tenants(options):
            found = sweep_schema(tenant.schema_name)
            self.stdout.write(
                f"{tenant.slug}: re-sent {found['commands']} command(s); projections behind: {bool(found['projections_behind'])}"
            )
