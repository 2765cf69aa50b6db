"""python manage.py forget_subject SUBJECT [SUBJECT ...] --tenant SLUG: erase a person's data."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from commands_app.domain.errors import IntentError
from commands_app.domain.personal import PLACEHOLDER
from commands_app.operations import Operator
from intent_project.tenants.models import Tenant
from projections_app.operations import forget_subjects


class Command(BaseCommand):
    help = (
        "Erase the personal data of one or more data subjects (for banking: account ids) in a "
        "tenant: their keys are deleted, so every sealed value of theirs (commands, events, "
        f"snapshots, exports and backups of them) reads as {PLACEHOLDER!r} from now on; the "
        "projections that hold personal data are rebuilt here before the command returns. "
        "The events stay immutable and replayable. Cannot be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subjects", nargs="+", metavar="SUBJECT")
        parser.add_argument("--tenant", required=True, help="The tenant's slug")
        parser.add_argument(
            "--queue-rebuilds",
            action="store_true",
            help="Queue the rebuilds on the workers instead of running them here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['tenant']}'.")
        try:
            with schema_context(tenant.schema_name):
                done = forget_subjects(
                    options["subjects"], by=Operator.shell(), rebuild_here=not options["queue_rebuilds"]
                )
        except IntentError as exc:
            raise CommandError(f"{exc.message} Nothing was erased.") from None
        for subject in done.erased:
            self.stdout.write(f"Erased {subject} in {tenant.slug}.")
        for subject in done.already:
            self.stdout.write(f"{subject} was erased before.")
        if done.projections:
            how = "queued on the workers" if options["queue_rebuilds"] else "rebuilt"
            self.stdout.write(f"Projections {how}: {', '.join(done.projections)}.")
