from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from commands_app.domain.errors import IntentError
from commands_app.operations import Operator
from intent_project.management import add_tenant_arguments, one_tenant
from projections_app import operations


class Command(BaseCommand):
    """Runs as the operator (`Operator.shell()`): the shell is already trusted."""

    help = "Retry the event a stalled projection stopped at."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        add_tenant_arguments(parser, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = one_tenant(options)
        with schema_context(tenant.schema_name):
            try:
                state = operations.resume(options["name"], by=Operator.shell())
            except IntentError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(f"{tenant.slug}/{state.name}: {state.status}, checkpoint {state.position}")
