"""Rebuild one projection beside its live version and swap it in, per tenant.

Runs as the operator: the shell is already trusted, so the rebuild runs here at once (with
progress) where the admin's action asks the operator policy and queues it on a worker.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django_tenants.utils import schema_context

from commands_app.operations import Operator
from intent_project.management import selected_tenants
from projections_app import operations
from projections_app.models import RebuildJob
from projections_app.operations import OperationRefused
from projections_app.rebuild import rebuild
from projections_app.registry import get_projection


class Command(BaseCommand):
    help = "Rebuild a projection from the event log beside the live one, then swap (no downtime)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--tenant", action="append", metavar="SLUG", help="Tenant slug (repeatable).")
        parser.add_argument("--all-tenants", action="store_true", help="Every tenant.")
        parser.add_argument("--parallel", type=int, default=1, help="Tenants rebuilt at once (default 1).")
        parser.add_argument("--cancel", action="store_true", help="Ask running rebuilds to stop instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if get_projection(name) is None:
            raise CommandError(f"No projection '{name}'.")
        if not options.get("tenant") and not options["all_tenants"]:
            raise CommandError("Name tenants with --tenant SLUG (repeatable) or use --all-tenants.")
        if options["parallel"] < 1:
            raise CommandError("--parallel must be at least 1.")
        tenants = selected_tenants(options)
        if options["cancel"]:
            for tenant in tenants:
                with schema_context(tenant.schema_name):
                    asked = operations.cancel_rebuild(name, by=Operator.shell())
                    self.stdout.write(f"{tenant.slug}: {asked} rebuild(s) asked to stop")
            return
        lock = threading.Lock()
        last_print: dict[str, float] = {}

        def show(slug: str, job: RebuildJob) -> None:
            now = time.monotonic()
            if job.finished_at is None and now - last_print.get(slug, 0) < 1.0:
                return
            last_print[slug] = now
            left = max(job.events_total - job.events_done, 0)
            eta = left / job.events_per_second if job.events_per_second else 0
            with lock:
                self.stdout.write(
                    f"{slug:<20} {name}: {job.events_done:>10,}/{job.events_total:,} events"
                    f"  {job.events_per_second:>9,.0f}/s  eta {eta:>5.0f}s  {job.status}"
                )

        def one(slug: str, schema: str) -> RebuildJob:
            try:
                with schema_context(schema):
                    return rebuild(name, progress=lambda job: show(slug, job))
            finally:
                connections.close_all()

        failures = 0
        with ThreadPoolExecutor(max_workers=options["parallel"]) as pool:
            futures = {pool.submit(one, t.slug, t.schema_name): t.slug for t in tenants}
            for future in as_completed(futures):
                try:
                    future.result()
                except OperationRefused as exc:
                    failures += 1
                    self.stderr.write(f"{futures[future]}: {exc.message}")
                except Exception as exc:  # report every tenant, fail at the end
                    failures += 1
                    self.stderr.write(f"{futures[future]}: rebuild failed: {exc}")
        if failures:
            raise SystemExit(1)
