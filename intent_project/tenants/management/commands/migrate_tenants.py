"""Migrate every tenant schema fast: skip the ones already current, migrate the rest in parallel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_exists

from intent_project.management import add_tenant_arguments, selected_tenants


def stale_schemas(schemas: list[str]) -> dict[str, int]:
    """Schemas missing migrations, with how many. One catalog read per schema.

    django-tenants records every app's migrations in every schema, so "current" means the
    schema's django_migrations holds every migration of the graph.
    """
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    wanted = set(graph.nodes)
    stale: dict[str, int] = {}
    with connection.cursor() as cursor:
        for schema in schemas:
            if not schema_exists(schema):
                stale[schema] = len(wanted)
                continue
            cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(schema)}.django_migrations")
            missing = wanted - set(cursor.fetchall())
            if missing:
                stale[schema] = len(missing)
    return stale


class Command(BaseCommand):
    help = (
        "Migrate the tenant schemas and the tenant template: schemas already current are "
        "skipped after one catalog query each; the others run --parallel at a time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_arguments(parser)
        parser.add_argument("--parallel", type=int, default=4, help="Schemas migrated at once (default 4).")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        schemas = [t.schema_name for t in selected_tenants(options)]
        if (
            settings.TENANT_CLONE_FROM_TEMPLATE
            and not options.get("tenant")
            and schema_exists(settings.TENANT_TEMPLATE_SCHEMA)
        ):
            schemas.append(settings.TENANT_TEMPLATE_SCHEMA)
        stale = stale_schemas(schemas)
        self.stdout.write(
            f"{len(schemas)} schemas: {len(schemas) - len(stale)} current, {len(stale)} to migrate "
            f"(checked in {time.monotonic() - started:.2f}s)"
        )
        failures = 0

        def migrate(schema: str) -> tuple[str, int, str]:
            # A process per schema: Django's migrate is not meant to run in threads.
            proc = subprocess.run(
                [sys.executable, "manage.py", "migrate_schemas", f"--schema={schema}", "--noinput", "-v0"],
                capture_output=True,
                text=True,
                cwd=settings.BASE_DIR,
                # The database this process is connected to (a test database included).
                env={**os.environ, "DATABASE_NAME": str(connection.settings_dict["NAME"])},
            )
            return schema, proc.returncode, proc.stderr[-2000:]

        with ThreadPoolExecutor(max_workers=max(options["parallel"], 1)) as pool:
            futures = [pool.submit(migrate, schema) for schema in sorted(stale)]
            for done, future in enumerate(as_completed(futures), start=1):
                schema, code, err = future.result()
                if code:
                    failures += 1
                    self.stderr.write(f"{schema}: migrate failed:\n{err}")
                else:
                    self.stdout.write(f"[{done}/{len(stale)}] {schema}: {stale[schema]} migration(s) applied")
        self.stdout.write(f"done in {time.monotonic() - started:.1f}s")
        if failures:
            raise SystemExit(1)
