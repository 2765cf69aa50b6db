from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from intent_project.management import add_tenant_arguments, one_tenant
from projections_app import operations
from projections_app.tasks import wake_projections


class Command(BaseCommand):
    help = "Retry the event a stalled projection stopped at."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        add_tenant_arguments(parser, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = one_tenant(options)
        with schema_context(tenant.schema_name):
            state = operations.resume(options["name"])
        wake_projections(tenant.schema_name)
        self.stdout.write(f"{tenant.slug}/{state.name}: {state.status}, checkpoint {state.position}")
