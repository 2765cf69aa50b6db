"""python manage.py import_tenant FILE --as NEW_SLUG: a tenant from an export_tenant file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from intent_project.tenants.management.commands.export_tenant import terminal_progress
from intent_project.tenants.models import validate_slug
from intent_project.tenants.portable import ImportRefused, import_tenant
from intent_project.tenants.services import TenantExists


class Command(BaseCommand):
    help = (
        "Create a tenant from an export_tenant file: loaded with COPY while every line is checked "
        "(order, event types and schema versions, then the counts and checksum), in one "
        "transaction, so a refused file creates nothing; then its projections are built."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--as", dest="slug", required=True, help="The new tenant's slug")
        parser.add_argument("--name", help="The new tenant's name (default: the exported one)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        try:
            validate_slug(options["slug"])
            tenant = import_tenant(path, options["slug"], options.get("name"), terminal_progress(sys.stderr))
        except ImportRefused as exc:
            raise CommandError(f"Refused {path}: {exc}. Nothing was created.") from None
        except TenantExists:
            raise CommandError(f"A tenant '{options['slug']}' exists already. Nothing was created.") from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Imported {path} as {tenant.slug} (schema {tenant.schema_name}).")
