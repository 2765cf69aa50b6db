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

    help = "Apply a skipped event to its projection now and clear the dead letter."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("letter_id", type=int)
        add_tenant_arguments(parser, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = one_tenant(options)
        with schema_context(tenant.schema_name):
            try:
                letter = operations.replay_dead_letter(options["letter_id"], by=Operator.shell())
            except IntentError as exc:
                raise CommandError(f"{tenant.slug}: {exc.message}") from None
        self.stdout.write(
            f"{tenant.slug}/{letter.projection}: replayed {letter.event_type} @ {letter.position}"
        )
