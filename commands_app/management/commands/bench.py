"""`python manage.py bench`: the benchmark suite (bench/, methodology in docs/benchmarks.md)."""

from __future__ import annotations

import importlib
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Run the benchmarks against the configured PostgreSQL and Redis; print our figures beside "
        "baselines measured in the same run and write them as JSON to $BENCH_OUT. Never fails on a target."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scale",
            type=float,
            default=None,
            help="Scale every workload (default $BENCH_SCALE or 1.0; 0.1 is a quick run).",
        )
        parser.add_argument("--only", help="Comma-separated benchmark names (or prefixes) to run.")
        parser.add_argument(
            "--out", help="JSON output path (default $BENCH_OUT or bench/results/latest.json)."
        )
        parser.add_argument("--keep", action="store_true", help="Keep the bench tenants and scratch schemas.")
        parser.add_argument("--list", action="store_true", help="List the benchmarks and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        # Imported by name: the suite lives beside the apps (bench/), outside the installed
        # packages, and its optional dependency (eventsourcing) is not needed by anything else.
        try:
            suite: Any = importlib.import_module("bench.suite")
        except ImportError as exc:
            raise CommandError(
                f"cannot import the benchmark suite (run from the project root): {exc}"
            ) from exc
        if options["list"]:
            for bench in suite.BENCHMARKS:
                self.stdout.write(f"{bench.name:<12} {bench.description}")
            return
        scale = options["scale"]
        if scale is None:
            try:
                scale = float(os.environ.get("BENCH_SCALE") or 1.0)
            except ValueError as exc:
                raise CommandError(f"BENCH_SCALE must be a number: {exc}") from exc
        if scale <= 0:
            raise CommandError("the scale must be positive")
        suite.run(scale, only=options["only"], out=options["out"], keep=options["keep"], stdout=self.stdout)
