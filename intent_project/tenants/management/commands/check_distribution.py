"""Report which PostgreSQL features this database uses that matter to Citus schema-based
sharding, and whether any would block distributing the tenant schemas (exit 1 if so).

The audit and its sources: docs/scaling.md. The checks: intent_project/tenants/distribution.py.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from intent_project.tenants import distribution


class Command(BaseCommand):
    help = (
        "Audit the connected database for Citus schema-based sharding: per feature, whether it "
        "is in use (over the tenant schemas, the template as reference) and whether it blocks "
        "distribution. Exit status 1 when something blocks, 0 otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Machine-readable report on stdout.")
        parser.add_argument(
            "--schema",
            action="append",
            metavar="NAME",
            help="Inspect these schemas (repeatable) instead of the template and every tenant schema.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        schemas = options.get("schema")
        if schemas:
            missing = [s for s in schemas if not distribution.schema_exists(s)]
            if missing:
                raise CommandError(f"No schema {', '.join(missing)}.")
            report = distribution.inspect(schemas, reference=schemas[0])
        else:
            report = distribution.inspect()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._print(report)
        if report.blocking:
            raise SystemExit(1)

    def _print(self, report: distribution.Report) -> None:
        citus = report.citus
        installed = f"citus {citus['version']}" if citus["installed"] else "citus not installed"
        self.stdout.write(
            f"{installed}; {len(report.schemas)} schema(s), reference {report.reference or '-'}"
        )
        for finding in report.findings:
            if finding.blocks:
                mark = self.style.ERROR("BLOCKS ")
            elif not finding.in_use:
                mark = "unused "
            elif finding.verdict == distribution.Verdict.SETTING:
                mark = self.style.WARNING("SETTING")
            else:
                mark = "ok     "
            self.stdout.write(f"{mark} {finding.key:<32} {finding.title}")
            if finding.in_use:
                self.stdout.write(f"        {_where(finding)}")
                if finding.verdict != distribution.Verdict.WORKS:
                    self.stdout.write(f"        {finding.note}")
        blocking = report.blocking
        self.stdout.write(
            f"{len(blocking)} blocking: {', '.join(blocking)}" if blocking else "nothing blocks distribution"
        )


def _where(finding: distribution.Finding) -> str:
    where = finding.where
    if finding.source == "code":
        return "code: " + ", ".join(where["files"])
    reference = where["reference"]
    text = (
        f"{len(reference)} in the reference, in {where['tenant_schemas_using']} other schema(s), "
        f"{where['tenant_schemas_differing']} differing"
    )
    examples = where.get("differing_examples")
    if examples:
        first, objects = next(iter(examples.items()))
        text += f" (e.g. {first}: {', '.join(objects[:3]) or 'none'})"
    return text
