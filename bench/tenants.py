"""Creating tenants among 1,000 others, and `migrate_tenants` with nothing to do (issue 16).

1. keep N tenants (`bt-0000`…, kept between runs and reused; BENCH_SCALE shrinks N), so
   the catalog holds what a thousand tenants make it hold.
2. copy, first in a fresh process: `create_tenant` in a new Python process, which loads
   the copy program stored by an earlier creation (tenants/template.py). Target < 0.3 s.
   Then the same after the template changed (no stored program matches): the process
   compiles the template's DDL and checks its first copy, once per template state.
3. copy, one process: 30 `create_tenant` calls on one database connection (a web process
   creating tenants on sign-up): the median, the last five, and the PostgreSQL backend's
   RSS (psutil) before and after. Target: median < 0.3 s.
4. running the migrations instead (TENANT_CLONE_FROM_TEMPLATE off): the median of a few.
5. django-tenants' `clone_schema`, which creation used before, for comparison: its
   functions created once per session, each clone rolled back.
6. `migrate_tenants` with every schema current, in its own process. Target < 30 s.

Tenants made by steps 2-4 are dropped afterwards; the N kept ones stay.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.common import ROOT, TENANT_PREFIX, Context, Result, Target

KEPT_PREFIX = "bt-"  # not TENANT_PREFIX: drop_leftovers() would drop them before each run
KEPT = 1_000
IN_ONE_PROCESS = 30
BY_MIGRATIONS = 5
BY_CLONE = 5

_FIRST_IN_A_PROCESS = """
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")
django.setup()
from intent_project.tenants.services import create_tenant
from intent_project.tenants.template import forget_programs
slugs = sys.argv[1:]
if slugs[0] == "--template-changed":  # as after a migration: no stored program matches
    forget_programs()
    slugs = slugs[1:]
times = []
for slug in slugs:
    started = time.perf_counter()
    create_tenant(slug, "bench")
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def _env() -> dict[str, str]:
    from django.db import connection

    # The database this process uses (the tests' own when the smoke test runs the suite).
    return {**os.environ, "DATABASE_NAME": str(connection.settings_dict["NAME"])}


def _backend_rss_mb() -> float | None:
    from django.db import connection

    try:
        import psutil
    except ImportError:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except (psutil.Error, OSError):
        return None


def _keep_tenants(ctx: Context, count: int) -> int:
    from django.db import connection

    from intent_project.tenants.models import Tenant
    from intent_project.tenants.services import create_tenant

    existing = set(Tenant.objects.filter(slug__startswith=KEPT_PREFIX).values_list("slug", flat=True))
    missing = [slug for slug in (f"{KEPT_PREFIX}{i:04d}" for i in range(count)) if slug not in existing]
    started = time.monotonic()
    for n, slug in enumerate(missing, 1):
        create_tenant(slug, "bench, kept")
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        if n % 100 == 0:
            ctx.log(f"created {n}/{len(missing)} kept tenants ({time.monotonic() - started:.0f}s)")
    if missing:
        ctx.log(f"created {len(missing)} kept tenants in {time.monotonic() - started:.0f}s")
    return Tenant.objects.exclude(schema_name="public").count()


def _slug(kind: str, ctx: Context, n: int) -> str:
    return f"{TENANT_PREFIX}{kind}-{ctx.run_id}-{n}"


def _timed_creations(ctx: Context, kind: str, count: int) -> list[float]:
    from django.db import connection

    from intent_project.tenants.models import Tenant
    from intent_project.tenants.services import create_tenant

    times = []
    for n in range(count):
        started = time.perf_counter()
        tenant = create_tenant(_slug(kind, ctx, n), "bench")
        times.append(time.perf_counter() - started)
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        ctx.tenants.append(Tenant.objects.get(pk=tenant.pk))
    return times


def _first_in_a_process(ctx: Context, template_changed: bool = False) -> list[float]:
    """Two creations in a new process: it loads the stored copy program, or, when the
    template changed since the last copy, compiles the program and checks its copy."""
    from intent_project.tenants.models import Tenant

    kind = "changed" if template_changed else "first"
    slugs = [_slug(kind, ctx, n) for n in range(2)]
    flag = ["--template-changed"] if template_changed else []
    run = subprocess.run(
        [sys.executable, "-c", _FIRST_IN_A_PROCESS, *flag, *slugs],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    ctx.tenants.extend(Tenant.objects.filter(slug__in=slugs))
    if run.returncode:
        raise RuntimeError(f"the fresh process failed:\n{run.stderr[-3000:]}")
    return [float(t) for t in json.loads(run.stdout.strip().splitlines()[-1])]


def _clone_times(count: int) -> list[float]:
    """django-tenants' clone of the template, as creation did before, each rolled back."""
    from django.conf import settings
    from django.db import connection, transaction
    from django_tenants.clone import CloneSchema

    class OncePerSession(CloneSchema):  # what services._Clone did
        def _create_clone_schema_function(self) -> None:
            pass

    with transaction.atomic():
        CloneSchema()._create_clone_schema_function()
    times = []
    for _ in range(count):
        with transaction.atomic():
            started = time.perf_counter()
            OncePerSession().clone_schema(settings.TENANT_TEMPLATE_SCHEMA, "bx_clone_" + uuid.uuid4().hex[:8])
            times.append(time.perf_counter() - started)
            transaction.set_rollback(True)
        connection.set_schema_to_public()  # type: ignore[attr-defined]
    return times


def _migrate_tenants_noop() -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "manage.py", "migrate_tenants"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - started
    if run.returncode:
        raise RuntimeError(f"migrate_tenants failed:\n{run.stderr[-3000:]}")
    return elapsed, run.stdout.strip().splitlines()[0]


def _summary(times: list[float]) -> dict[str, Any]:
    return {
        "n": len(times),
        "median_s": round(statistics.median(times), 4),
        "first_s": round(times[0], 4),
        "last_five_s": [round(t, 4) for t in times[-5:]],
        "max_s": round(max(times), 4),
    }


def run_tenants(ctx: Context) -> list[Result]:
    from django.conf import settings

    total = _keep_tenants(ctx, ctx.n(KEPT, minimum=10))
    ctx.log(f"{total} tenant schemas in this database")
    rows: list[Result] = []
    note = f"{total} tenants"

    from intent_project.tenants.services import prepare_template

    prepare_template()  # the deploy step (migrate_tenants): a checked program is stored
    first = _first_in_a_process(ctx)
    rows.append(
        Result(
            "tenant_create_copy_first_in_a_process",
            first[0],
            "s",
            Target("< 0.3 s", "ours", "<", 0.3),
            extra={"tenants": total, "second_in_that_process_s": round(first[1], 4)},
            note=f"{note}; loads the stored copy program (one query)",
        )
    )
    changed = _first_in_a_process(ctx, template_changed=True)
    rows.append(
        Result(
            "tenant_create_copy_first_after_template_change",
            changed[0],
            "s",
            extra={"tenants": total, "second_in_that_process_s": round(changed[1], 4)},
            note=f"{note}; compiles the template's DDL, checks the copy, stores the program",
        )
    )

    from django.db import connection

    connection.close()  # a new backend, as a web process would have
    rss_before = _backend_rss_mb()
    copies = _timed_creations(ctx, "copy", ctx.n(IN_ONE_PROCESS, minimum=3))
    rss_after = _backend_rss_mb()
    rows.append(
        Result(
            "tenant_create_copy_median_one_connection",
            statistics.median(copies),
            "s",
            Target("< 0.3 s", "ours", "<", 0.3),
            extra={
                "tenants": total,
                **_summary(copies),
                "backend_rss_mb_before": rss_before,
                "backend_rss_mb_after": rss_after,
            },
            note=note,
        )
    )

    settings.TENANT_CLONE_FROM_TEMPLATE = False
    try:
        migrated = _timed_creations(ctx, "migrate", ctx.n(BY_MIGRATIONS, minimum=2))
    finally:
        settings.TENANT_CLONE_FROM_TEMPLATE = True
    rows.append(
        Result(
            "tenant_create_by_migrations_median",
            statistics.median(migrated),
            "s",
            extra={"tenants": total, **_summary(migrated)},
            note=note,
        )
    )

    clones = _clone_times(ctx.n(BY_CLONE, minimum=2))
    rows.append(
        Result(
            "tenant_create_old_clone_schema_median",
            statistics.median(clones),
            "s",
            extra={"tenants": total, **_summary(clones), "backend_rss_mb_after": _backend_rss_mb()},
            note=f"{note}; django-tenants' clone_schema only (no rows, no names aligned), for comparison",
        )
    )

    elapsed, summary = _migrate_tenants_noop()
    rows.append(
        Result(
            "migrate_tenants_nothing_to_do",
            elapsed,
            "s",
            Target("< 30 s", "ours", "<", 30),
            extra={"tenants": total},
            note=f"whole process; {summary}",
        )
    )
    return rows
