"""Shared pieces of the benchmark suite: result rows, scaling, tenants, writer processes.

Every benchmark returns `Result` rows. A row compares our figure with a baseline measured
in the same run (`ratio = ours / baseline`) or with an absolute target (no baseline).
Targets are printed as met or missed; nothing here ever fails on a threshold.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
TENANT_PREFIX = "bx-"  # slugs of the suite's tenants (bench/seed_and_rebuild.py uses "bench-")
SCRATCH_PREFIX = "bx_"  # scratch schemas: raw baselines and the eventsourcing library
ZIPF_EXPONENT = 1.0
N_AGGREGATES = 1000


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Target:
    """`ratio >= 0.7`, `ours >= 1000`, `ours < 250` ...; `text` is what the table shows."""

    text: str
    subject: str  # "ratio" or "ours"
    op: str  # ">=", "<=", "<", ">"
    threshold: float

    def met(self, ours: float | None, ratio: float | None) -> bool | None:
        value = ratio if self.subject == "ratio" else ours
        if value is None or math.isnan(value):
            return None
        return {
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
            "<": value < self.threshold,
            ">": value > self.threshold,
        }[self.op]


@dataclass
class Result:
    name: str
    ours: float | None
    unit: str
    target: Target | None = None
    baseline: float | None = None
    baseline_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        return self.target.met(self.ours, self.ratio) if self.target else None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": _round(self.ours),
            "baseline": _round(self.baseline),
            "baseline_name": self.baseline_name,
            "ratio": _round(self.ratio, 3),
            "unit": self.unit,
            "target": self.target.text if self.target else "",
            "met": self.met,
            "note": self.note,
            "extra": self.extra,
        }


def skipped(name: str, unit: str, target: Target | None, note: str) -> Result:
    return Result(name=name, ours=None, unit=unit, target=target, note=f"skipped: {note}")


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds (nearest-rank percentiles)."""
    if not seconds:
        return {}
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    return {
        "n": len(ordered),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


# --------------------------------------------------------------------------- scale and context


def _zipf_cumulative(n: int, s: float) -> list[float]:
    cumulative, total = [], 0.0
    for rank in range(1, n + 1):
        total += 1.0 / (rank**s)
        cumulative.append(total)
    return cumulative


def zipf_indices(seed: int, n: int = N_AGGREGATES, s: float = ZIPF_EXPONENT) -> Iterator[int]:
    """An endless, reproducible stream of indices in [0, n) drawn Zipf(s); 0 is the hottest."""
    cumulative = _zipf_cumulative(n, s)
    rng = random.Random(seed)
    population = range(n)
    while True:
        yield from rng.choices(population, cum_weights=cumulative, k=4096)


def stream_ids(seed: int, n: int = N_AGGREGATES) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(n)]


class Context:
    """What every benchmark gets: the scale, logging, and clean-up of what it created."""

    def __init__(self, scale: float, keep: bool = False, verbose: bool = True) -> None:
        self.scale = scale
        self.keep = keep
        self.verbose = verbose
        self.run_id = secrets.token_hex(3)
        self.tenants: list[Any] = []
        self.schemas: list[str] = []
        self._cleanups: list[Callable[[], None]] = []
        self.t0 = time.monotonic()

    # sizes -----------------------------------------------------------------------------
    def n(self, full: int, minimum: int = 1) -> int:
        return max(minimum, int(full * self.scale))

    def seconds(self, full: float, minimum: float = 0.3) -> float:
        return max(minimum, full * self.scale)

    # output ----------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.verbose:
            sys.stderr.write(f"[bench {time.monotonic() - self.t0:6.1f}s] {message}\n")
            sys.stderr.flush()

    # resources -------------------------------------------------------------------------
    def fresh_tenant(self, purpose: str) -> Any:
        from django.db import connection

        from intent_project.tenants.services import create_tenant

        slug = f"{TENANT_PREFIX}{purpose}-{self.run_id}"[:40]
        tenant = create_tenant(slug, f"bench {purpose}")
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        self.tenants.append(tenant)
        return tenant

    def scratch_schema(self, purpose: str) -> str:
        from django.db import connection

        name = f"{SCRATCH_PREFIX}{purpose}_{self.run_id}"
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            cursor.execute(f'CREATE SCHEMA "{name}"')
        self.schemas.append(name)
        return name

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    def cleanup(self) -> None:
        from django.db import connection

        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()
        if self.keep:
            self.log(f"kept {_listed([t.slug for t in self.tenants])} and schemas {_listed(self.schemas)}")
            return
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        for tenant in self.tenants:
            drop_tenant(tenant)
        with connection.cursor() as cursor:
            for schema in self.schemas:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.tenants.clear()
        self.schemas.clear()


def drop_tenant(tenant: Any) -> None:
    from django.db import connection

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
    tenant.delete()


def drop_leftovers(log: Callable[[str], None]) -> None:
    """Tenants and scratch schemas of an earlier run that did not get to clean up."""
    from django.db import connection

    from intent_project.tenants.models import Tenant

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    stale = list(Tenant.objects.filter(slug__startswith=TENANT_PREFIX))
    for tenant in stale:
        drop_tenant(tenant)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
            [SCRATCH_PREFIX.replace("_", r"\_") + "%"],
        )
        schemas = [row[0] for row in cursor.fetchall()]
        for schema in schemas:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if stale or schemas:
        log(f"dropped {len(stale)} tenant(s) and {len(schemas)} scratch schema(s) left by an earlier run")


# --------------------------------------------------------------------------- connections


def pg_kwargs() -> dict[str, Any]:
    """psycopg.connect() keyword arguments for Django's default database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    kwargs: dict[str, Any] = {"dbname": db["NAME"], "user": db.get("USER") or "postgres"}
    if db.get("PASSWORD"):
        kwargs["password"] = db["PASSWORD"]
    if db.get("HOST"):
        kwargs["host"] = db["HOST"]
    if db.get("PORT"):
        kwargs["port"] = str(db["PORT"])
    return kwargs


def bench_redis_url() -> str:
    """The Redis URL the suite's worker and web processes use.

    BENCH_REDIS_DB picks the database; by default database 0 (what `make run` uses) is
    replaced by 14, so a running development worker never consumes the suite's messages.
    """
    from django.conf import settings

    parts = urlsplit(settings.REDIS_URL)
    current = parts.path.strip("/") or "0"
    wanted = os.environ.get("BENCH_REDIS_DB") or ("14" if current == "0" else current)
    return urlunsplit((parts.scheme, parts.netloc, f"/{wanted}", parts.query, parts.fragment))


def use_redis(url: str) -> None:
    """Point this process's Celery app and wake-up coalescing at `url`."""
    from django.conf import settings

    from intent_project.celery import app
    from projections_app import tasks as projection_tasks

    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    projection_tasks._redis.cache_clear()


def server_settings() -> dict[str, str]:
    """The PostgreSQL settings that decide write rates (recorded with the results)."""
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        out["version"] = cursor.fetchone()[0].split(" on ")[0]
        for name in ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_connections"):
            cursor.execute(f"SHOW {name}")
            out[name] = cursor.fetchone()[0]
    host = str(connection.settings_dict.get("HOST") or "")
    out["transport"] = "unix socket" if host.startswith("/") or not host else "TCP"
    return out


# --------------------------------------------------------------------------- writer processes

# A step does one unit of work and returns how many conflicts it re-decided (0 mostly).
Step = Callable[[], int]
# A setup runs in the child process: it gets the child's index and returns (step, teardown).
Setup = Callable[[int], tuple[Step, Callable[[], None]]]


@dataclass
class WriterRun:
    processes: int
    ops: int
    elapsed: float
    conflicts: int
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0


def _writer_child(
    setup: Setup, index: int, warmup_ops: int, duration: float, barrier: Any, queue: Any
) -> None:
    try:
        step, teardown = setup(index)
        for _ in range(warmup_ops):
            step()
        barrier.wait(timeout=300)
        latencies: list[float] = []
        conflicts = 0
        t0 = time.perf_counter()
        deadline = t0 + duration
        end = t0
        while end < deadline:
            start = time.perf_counter()
            conflicts += step()
            end = time.perf_counter()
            latencies.append(end - start)
        teardown()
        queue.put({"ops": len(latencies), "elapsed": end - t0, "conflicts": conflicts, "lat": latencies})
    except BaseException:
        with contextlib.suppress(Exception):
            barrier.abort()
        queue.put({"error": traceback.format_exc()})


def run_writers(setup: Setup, processes: int, duration: float, warmup_ops: int = 20) -> WriterRun:
    """Run `processes` forked writer processes for `duration` seconds after a common start.

    Processes, not threads: our Django code and the baselines are CPU-bound Python and the
    GIL would serialise threads. Each child builds its own connections after the fork
    (Django's are closed first), warms up, waits at a barrier, then runs for `duration`.
    """
    from django.db import connections

    connections.close_all()
    mp = multiprocessing.get_context("fork")
    barrier = mp.Barrier(processes)
    queue = mp.Queue()
    children = [
        mp.Process(target=_writer_child, args=(setup, i, warmup_ops, duration, barrier, queue), daemon=True)
        for i in range(processes)
    ]
    for child in children:
        child.start()
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    deadline = time.monotonic() + duration + 300
    while len(results) + len(errors) < processes:
        try:
            item = queue.get(timeout=max(1.0, deadline - time.monotonic()))
        except Exception:
            errors.append("a writer process did not report (timeout)")
            break
        if "error" in item:
            errors.append(item["error"])
        else:
            results.append(item)
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    if errors:
        raise RuntimeError("writer process failed:\n" + "\n".join(errors))
    return WriterRun(
        processes=processes,
        ops=sum(r["ops"] for r in results),
        elapsed=max(r["elapsed"] for r in results),
        conflicts=sum(r["conflicts"] for r in results),
        latencies=[x for r in results for x in r["lat"]],
    )


def _listed(names: list[str], shown: int = 5) -> str:
    """A list of names for a log line: all of a few, or the count and the first and last."""
    if len(names) <= shown:
        return str(names)
    return f"{len(names)} ({names[0]} ... {names[-1]})"
