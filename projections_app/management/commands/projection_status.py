from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from intent_project.management import add_tenant_arguments, selected_tenants
from projections_app.lookup import checkpoints
from projections_app.runner import head_position


class Command(BaseCommand):
    """Reads only: a projection whose checkpoint row does not exist yet shows as position 0."""

    help = "Show every projection's status, checkpoint and lag per tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(
            f"{'tenant':<20} {'projection':<24} {'status':<8} {'checkpoint':>10} {'lag':>8}  error"
        )
        for tenant in selected_tenants(options):
            with schema_context(tenant.schema_name):
                head = head_position()
                for _, state in sorted(checkpoints().items()):
                    error = (state.last_error or {}).get("message", "")
                    self.stdout.write(
                        f"{tenant.slug:<20} {state.name:<24} {state.status:<8} {state.position:>10} "
                        f"{max(head - state.position, 0):>8}  {error[:80]}"
                    )
