"""Compare every read model with a fresh replay of the event log (changes nothing)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from intent_project.management import add_tenant_arguments, selected_tenants
from projections_app.operations import verify


class Command(BaseCommand):
    help = "Replay each projection up to its checkpoint in a rolled-back transaction and compare with the live rows. Exit 1 on any difference."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_arguments(parser)
        parser.add_argument("--projection", action="append", help="Only this projection (repeatable).")
        parser.add_argument("--json", action="store_true", help="Machine-readable report on stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        report: list[dict[str, Any]] = []
        for tenant in selected_tenants(options):
            if not options["json"]:
                self.stderr.write(f"verifying {tenant.slug} ...")
            with schema_context(tenant.schema_name):
                for result in verify(options.get("projection")):
                    report.append(
                        {
                            "tenant": tenant.slug,
                            "projection": result.projection,
                            "ok": result.ok,
                            "checkpoint": result.checkpoint,
                            "live_rows": result.live_rows,
                            "replayed_rows": result.replayed_rows,
                            "differences": result.differences,
                        }
                    )
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            for item in report:
                mark = "ok  " if item["ok"] else "DIFF"
                self.stdout.write(
                    f"{mark} {item['tenant']:<20} {item['projection']:<24} checkpoint {item['checkpoint']:>8}"
                    f"  rows live {item['live_rows']} / replayed {item['replayed_rows']}"
                )
                for diff in item["differences"]:
                    self.stdout.write(
                        f"       {diff['model']} {diff['pk']}: live={diff['live']} replayed={diff['replayed']}"
                    )
        if not all(item["ok"] for item in report):
            raise SystemExit(1)
