"""python manage.py import_events FILE --tenant SLUG: events from another system, appended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from events_app.bulk import EventsRefused, import_events
from intent_project import lifecycle
from intent_project.tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Append events from another system (JSON lines, plain or gzip: one event per line with "
        "stream_type, stream_id, version, type and payload) to a tenant's log after its head. "
        "Every line is checked against the registry and each stream's version; any refusal "
        "and nothing is appended. Sagas do not react to imported events unless --react."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--tenant", required=True, help="The tenant's slug")
        parser.add_argument(
            "--react", action="store_true", help="Let sagas react to the imported events (default: not)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['tenant']}'.")
        try:
            with schema_context(tenant.schema_name):
                result = import_events(path, tenant.schema_name, react=options["react"])
        except EventsRefused as exc:
            raise CommandError(f"Refused {path}: {exc}. Nothing was appended.") from None
        lifecycle.operator_action(
            "import_events", operator="manage.py", target=tenant.schema_name, **result.as_dict()
        )
        self.stdout.write(
            f"Imported {result.events:,} events in {result.streams:,} streams "
            f"({result.new_streams:,} new) into {tenant.slug}: positions "
            f"{result.first_position}..{result.last_position}, import {result.id}."
        )
        if options["verbosity"] > 1:
            self.stdout.write(json.dumps(result.as_dict()))
