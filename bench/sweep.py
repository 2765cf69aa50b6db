"""The periodic sweep with many tenants (issue 16): marked passes and a full pass.

1. N idle tenants (1,000 at scale 1; slugs `bs-0000`...). Created once and kept between
   runs (creating 1,000 takes minutes), so later runs reuse them; `drop_leftovers` leaves
   this prefix alone. One full pass first, so none of them is marked.
2. A marked pass with every tenant idle: time and queries (the steady state).
3. The same with BUSY tenants marked (a pending command each): the cost of the work.
4. A full pass over every tenant: what every pass cost before the marks, and now once per
   SWEEP_FULL_PASS_SECONDS.

(A fifth part timed the mark trigger per append; the mark now rides in the append's own
round trip, intent_project/announcements.py, and the appends benchmark includes it.)

Queries are counted with Django's CaptureQueriesContext (the sweep's own connection).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.common import Context, Result

PREFIX = "bs-"
TENANTS = 1_000
BUSY = 10
PASSES = 5


def ensure_tenants(ctx: Context, count: int) -> list[Any]:
    from django.db import connection

    from intent_project.tenants.models import Tenant
    from intent_project.tenants.services import create_tenant

    have = {t.slug: t for t in Tenant.objects.filter(slug__startswith=PREFIX)}
    started = time.perf_counter()
    made = 0
    for i in range(count):
        slug = f"{PREFIX}{i:04d}"
        if slug not in have:
            have[slug] = create_tenant(slug, "bench sweep")
            connection.set_schema_to_public()  # type: ignore[attr-defined]
            made += 1
            if made % 50 == 0:
                ctx.log(f"sweep: created {made} tenants in {time.perf_counter() - started:.0f} s")
    if made:
        ctx.log(
            f"sweep: created {made} tenants in {time.perf_counter() - started:.0f} s (kept for later runs)"
        )
    return [have[f"{PREFIX}{i:04d}"] for i in range(count)]


def _timed_pass(full: bool) -> tuple[float, int, dict[str, int]]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from intent_project.tasks import sweep_all_tenants

    reset_queries()  # the log keeps 9,000 queries: a full pass would overflow it and count 0
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        outcome = sweep_all_tenants(full=full)
        seconds = time.perf_counter() - start
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return seconds, len(queries), outcome


def _passes(full: bool, n: int) -> tuple[float, int, dict[str, int]]:
    runs = [_timed_pass(full) for _ in range(n)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def run_sweep(ctx: Context) -> list[Result]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from commands_app import bus
    from commands_app.models import Command

    count = ctx.n(TENANTS, minimum=20)
    tenants = ensure_tenants(ctx, count)
    _timed_pass(full=True)  # visit everything once: every idle tenant's mark removed
    shape = {"tenants": count}

    idle_seconds, idle_queries, idle = _passes(False, PASSES)
    ctx.log(f"sweep: marked pass, all idle: {idle_seconds * 1000:.1f} ms, {idle_queries} queries, {idle}")

    busy = tenants[: min(BUSY, count)]
    for tenant in busy:
        with schema_context(tenant.schema_name):
            bus.submit(
                schema_name=tenant.schema_name,
                tenant=tenant.slug,
                type_name="logMessage",
                payload={"message": "bench sweep"},
                role="developer",
                user_id="1",
            )
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    busy_seconds, busy_queries, busy_outcome = _passes(False, PASSES)
    ctx.log(
        f"sweep: marked pass, {len(busy)} busy: {busy_seconds * 1000:.1f} ms, {busy_queries} queries, {busy_outcome}"
    )
    for tenant in busy:  # leave them idle for the next run
        with schema_context(tenant.schema_name):
            Command.objects.all().delete()
    connection.set_schema_to_public()  # type: ignore[attr-defined]

    full_seconds, full_queries, full = _passes(True, 1)
    ctx.log(f"sweep: full pass: {full_seconds * 1000:.0f} ms, {full_queries} queries, {full}")

    return [
        Result(
            name="sweep_idle_pass",
            ours=idle_seconds * 1000,
            baseline=full_seconds * 1000,
            baseline_name="a full pass (every tenant visited: what every pass did before the marks)",
            unit="ms",
            target=None,
            extra={**shape, "queries": idle_queries, "full_pass_queries": full_queries},
            note=f"all {count} tenants idle: the marks read in one query, nothing visited (median of {PASSES})",
        ),
        Result(
            name="sweep_busy_pass",
            ours=busy_seconds * 1000,
            baseline=None,
            baseline_name="",
            unit="ms",
            target=None,
            extra={**shape, "busy": len(busy), "queries": busy_queries},
            note=f"{len(busy)} tenants with a pending command, the rest idle (median of {PASSES})",
        ),
        Result(
            name="sweep_full_pass",
            ours=full_seconds * 1000,
            baseline=None,
            baseline_name="",
            unit="ms",
            target=None,
            extra={**shape, "queries": full_queries},
            note="every tenant visited, once per SWEEP_FULL_PASS_SECONDS",
        ),
    ]
