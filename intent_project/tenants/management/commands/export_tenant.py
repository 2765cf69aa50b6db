"""python manage.py export_tenant SLUG [--out FILE]: the tenant as one portable file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from intent_project.tenants.models import Tenant
from intent_project.tenants.portable import Progress, export_tenant


def terminal_progress(stream: Any) -> Progress:
    """Counts on one line of a terminal as the work goes; nothing when not a terminal."""
    if not stream.isatty():
        return Progress()
    return Progress(lambda kind, count: stream.write(f"\r  {kind}s: {count:,}   "))


class Command(BaseCommand):
    help = (
        "Export a tenant (events, commands with their outcomes, saga instances, dead letters, "
        "snapshots and a manifest) as one gzip-compressed JSON-lines file, from one consistent "
        "snapshot of its schema."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", help="The file to write (default: <slug>.intent.jsonl.gz)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["slug"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['slug']}'.")
        out = Path(options["out"] or f"{tenant.slug}.intent.jsonl.gz")
        partial = out.with_name(out.name + ".partial")
        try:
            with partial.open("wb") as file:
                counts = export_tenant(tenant, file, terminal_progress(sys.stderr))
            partial.replace(out)  # a file under its name is always a whole export
        finally:
            partial.unlink(missing_ok=True)
        summary = ", ".join(f"{n:,} {kind}s" for kind, n in counts.items())
        self.stdout.write(f"Exported {tenant.slug} to {out}: {summary}.")
