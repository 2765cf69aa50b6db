from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from commands_app import operations
from commands_app.domain.errors import IntentError
from intent_project.management import add_tenant_arguments, one_tenant


class Command(BaseCommand):
    """Runs as the operator (`Operator.shell()`, the tenant-admin role): the shell is already
    trusted, so the operator policy has nothing to refuse here."""

    help = "Send a failed command again (operators act with the tenant-admin role)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("command_id", type=uuid.UUID)
        add_tenant_arguments(parser, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = one_tenant(options)
        with schema_context(tenant.schema_name):
            try:
                command = operations.retry(options["command_id"], by=operations.Operator.shell())
            except IntentError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(f"{tenant.slug}: {command.type} {command.id} is pending again")
