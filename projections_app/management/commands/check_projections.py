"""Report drift between the models/projections and every tenant schema (exit 1 if any).

Runs as the operator (`Operator.shell()`): the shell is already trusted.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from commands_app.operations import Operator
from intent_project.management import add_tenant_arguments, selected_tenants
from projections_app.drift import reference_catalog
from projections_app.operations import check_drift


class Command(BaseCommand):
    help = (
        "Compare each tenant schema with the models (tables, columns, types, indexes), its "
        "migration history, and the projection versions/code its read models were built by."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Machine-readable report on stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = selected_tenants(options)
        report: dict[str, list[dict[str, Any]]] = {}
        with reference_catalog() as reference:
            for tenant in tenants:
                found = check_drift(tenant.schema_name, by=Operator.shell(), reference=reference)
                report[tenant.slug] = [f.as_dict() for f in found]
        drifted = {slug: findings for slug, findings in report.items() if findings}
        if options["json"]:
            self.stdout.write(
                json.dumps({"tenants": report, "drifted": sorted(drifted)}, indent=2, default=str)
            )
        else:
            for slug, findings in report.items():
                if not findings:
                    self.stdout.write(f"ok     {slug}")
                    continue
                self.stdout.write(self.style.ERROR(f"DRIFT  {slug}"))
                for finding in findings:
                    who = f"[{finding['projection']}] " if finding["projection"] else ""
                    self.stdout.write(f"       {finding['kind']:<20} {who}{finding['message']}")
            self.stdout.write(f"{len(report) - len(drifted)} clean, {len(drifted)} drifted")
        if drifted:
            raise SystemExit(1)
