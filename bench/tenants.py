"""Tenant creation time (clone vs migrate) and migrating many tenants (stock vs migrate_tenants).

Usage: python bench/tenants.py [N]   (creates bench tenants bt-000.. if missing; prints figures)
"""

import os
import statistics
import subprocess
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from intent_project.tenants.models import Tenant  # noqa: E402
from intent_project.tenants.services import create_tenant  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
MANAGE = [sys.executable, "manage.py"]


def timed(label, argv):
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    print(f"{label:<58} {elapsed:7.1f} s")
    return elapsed


for mode in (False, True):
    settings.TENANT_CLONE_FROM_TEMPLATE = mode
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        create_tenant(f"bc-{int(mode)}-{os.getpid()}-{i}", "bench")
        times.append(time.perf_counter() - t0)
    print(
        f"create tenant by {'cloning the template' if mode else 'running migrations':<24} median {statistics.median(times):.2f} s  (n=5)"
    )

existing = set(Tenant.objects.filter(slug__startswith="bt-").values_list("slug", flat=True))
t0 = time.perf_counter()
for i in range(N):
    slug = f"bt-{i:03d}"
    if slug not in existing:
        create_tenant(slug, "bench")
print(f"ensured {N} bench tenants in {time.perf_counter() - t0:.0f} s")
total = Tenant.objects.exclude(schema_name="public").count()
print(f"tenant schemas in this database: {total}")

timed(
    f"no-op: migrate_schemas --tenant (django-tenants), {total} tenants",
    [*MANAGE, "migrate_schemas", "--tenant", "-v0"],
)
timed(f"no-op: migrate_tenants, {total} tenants", [*MANAGE, "migrate_tenants"])

# One new migration everywhere: undo projections_app.0003 in every bench schema.
schemas = list(Tenant.objects.filter(slug__startswith="bt-").values_list("schema_name", flat=True))


def undo_latest():
    with connection.cursor() as cursor:
        for schema in schemas:
            q = connection.ops.quote_name(schema)
            cursor.execute(f"DROP TABLE IF EXISTS {q}.projections_app_rebuildjob")
            cursor.execute(
                f"ALTER TABLE {q}.projections_app_projectionstate DROP COLUMN IF EXISTS fingerprint"
            )
            cursor.execute(
                f"DELETE FROM {q}.django_migrations WHERE app = 'projections_app' AND name = '0003_rebuilds'"
            )


undo_latest()
timed(
    f"one new migration: migrate_schemas --tenant, {len(schemas)} stale",
    [*MANAGE, "migrate_schemas", "--tenant", "-v0"],
)
undo_latest()
timed(
    f"one new migration: migrate_tenants --parallel 2, {len(schemas)} stale",
    [*MANAGE, "migrate_tenants", "--parallel", "2"],
)
