"""Migrate every tenant schema fast: skip the ones already current, migrate the rest in parallel."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_exists

from intent_project.management import add_tenant_arguments, selected_tenants
from intent_project.tenants.services import prepare_template


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
        parser.add_argument(
            "--parallel", type=int, default=2, help="Processes migrating at once (default 2)."
        )
        parser.add_argument("--chunk", help=argparse.SUPPRESS)  # internal: schemas for one worker process

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("chunk"):
            for schema in options["chunk"].split(","):
                call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
                self.stdout.write(f"{schema}: migrated")
            return
        started = time.monotonic()
        schemas = [t.schema_name for t in selected_tenants(options)]
        with_template = (
            settings.TENANT_CLONE_FROM_TEMPLATE
            and not options.get("tenant")
            and schema_exists(settings.TENANT_TEMPLATE_SCHEMA)
        )
        if with_template:
            schemas.append(settings.TENANT_TEMPLATE_SCHEMA)
        stale = stale_schemas(schemas)
        self.stdout.write(
            f"{len(schemas)} schemas: {len(schemas) - len(stale)} current, {len(stale)} to migrate "
            f"(checked in {time.monotonic() - started:.2f}s)"
        )
        parallel = max(1, min(options["parallel"], len(stale)))
        # Each worker process migrates a share of the schemas in turn: Django's migrate is
        # not meant for threads, and a process per schema would pay start-up every time.
        chunks = [sorted(stale)[i::parallel] for i in range(parallel)] if stale else []
        env = {**os.environ, "DATABASE_NAME": str(connection.settings_dict["NAME"])}
        procs = [
            subprocess.Popen(
                [sys.executable, "manage.py", "migrate_tenants", "--chunk", ",".join(chunk)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=settings.BASE_DIR,
                env=env,
            )
            for chunk in chunks
        ]
        failures = 0
        for proc in procs:
            out, err = proc.communicate()
            for line in out.splitlines():
                self.stdout.write(f"{line}: {stale.get(line.split(':')[0], 0)} migration(s) applied")
            if proc.returncode:
                failures += 1
                self.stderr.write(f"a migration worker failed:\n{err[-3000:]}")
        if with_template and not failures:
            # The first tenant created after a deploy then copies at full speed too.
            prepared = time.monotonic()
            if prepare_template():
                self.stdout.write(
                    f"template copy program compiled and checked in {time.monotonic() - prepared:.2f}s"
                )
        self.stdout.write(f"done in {time.monotonic() - started:.1f}s")
        if failures:
            raise SystemExit(1)
