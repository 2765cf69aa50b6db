"""The benchmark runner: run the selected benchmarks, print the table, write JSON.

Entry points: `python manage.py bench [--scale S] [--only NAME,...] [--out PATH]` and
`make bench`. BENCH_SCALE (default 1.0) scales every workload; BENCH_OUT (default
bench/results/latest.json) receives the rows as a JSON list. Figures only: a missed target
is reported, never an error.
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench.common import ROOT, Context, Result, bench_redis_url, drop_leftovers, server_settings, use_redis
from intent_project import heap

DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[Context], list[Result]]


def _appends(method: str) -> Callable[[Context], list[Result]]:
    def run(ctx: Context) -> list[Result]:
        from bench.appends import Appends

        return list(getattr(Appends(ctx), method)())

    return run


def _pipeline(ctx: Context) -> list[Result]:
    from bench.pipeline import run_pipeline

    return run_pipeline(ctx)


def _http(ctx: Context) -> list[Result]:
    from bench.endtoend import run_http

    return run_http(ctx)


def _waits(ctx: Context) -> list[Result]:
    from bench.waits import run_waits

    return run_waits(ctx)


def _streams(ctx: Context) -> list[Result]:
    from bench.streams import run_streams

    return run_streams(ctx)


def _projections(ctx: Context) -> list[Result]:
    from bench.projections import run_projections

    return run_projections(ctx)


def _portability(ctx: Context) -> list[Result]:
    from bench.portability import run_portability

    return run_portability(ctx)


def _fleet(ctx: Context) -> list[Result]:
    from bench.fleet import run_fleet

    return run_fleet(ctx)


def _sweep(ctx: Context) -> list[Result]:
    from bench.sweep import run_sweep

    return run_sweep(ctx)


def _loads(ctx: Context) -> list[Result]:
    from bench.loads import run_loads

    return run_loads(ctx)


def _tenants(ctx: Context) -> list[Result]:
    from bench.tenants import run_tenants

    return run_tenants(ctx)


BENCHMARKS = (
    Benchmark("append_1", "append, 1 writer, 1 event per transaction", _appends("run_single")),
    Benchmark(
        "append_8", "append, 8 writers, Zipf streams, conflicts re-decided", _appends("run_concurrent")
    ),
    Benchmark("append_100", "append, 100 events per transaction", _appends("run_batch")),
    Benchmark("pipeline", "command pipeline, worker only; worker memory", _pipeline),
    Benchmark("http", "end to end over HTTP: sustained rate, latency at 200/s", _http),
    Benchmark("waits", "300 parked waits of one user vs another tenant's reads; the cap", _waits),
    Benchmark("streams", "500 live event streams while commands flow vs another tenant's reads", _streams),
    Benchmark("projection", "projection catch-up and rebuild", _projections),
    Benchmark("load", "aggregate load with snapshots, 10 vs 10,000 events", _loads),
    Benchmark("portability", "tenant export, and import beside raw COPY", _portability),
    Benchmark("tenants", "creating a tenant among 1,000; migrate_tenants with nothing to do", _tenants),
    Benchmark("fleet", "worker and web memory after serving 1,000 tenants", _fleet),
    Benchmark(
        "sweep", "the sweep with 1,000 idle tenants: marked, busy and full passes; trigger cost", _sweep
    ),
)


def select(only: str | None) -> list[Benchmark]:
    """Benchmarks named in `only` (comma-separated): exact names, else name prefixes."""
    if not only:
        return list(BENCHMARKS)
    chosen: list[Benchmark] = []
    for wanted in (w.strip() for w in only.split(",") if w.strip()):
        exact = [b for b in BENCHMARKS if b.name == wanted]
        matches = exact or [b for b in BENCHMARKS if b.name.startswith(wanted)]
        if not matches:
            names = ", ".join(b.name for b in BENCHMARKS)
            raise SystemExit(f"unknown benchmark {wanted!r}; known: {names}")
        chosen.extend(b for b in matches if b not in chosen)
    return [b for b in BENCHMARKS if b in chosen]


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "ratio" or abs(value) < 10:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def format_table(rows: list[Result]) -> str:
    header = ("benchmark", "ours", "baseline", "ratio", "unit", "target", "")
    lines = [header]
    for r in rows:
        verdict = {True: "met", False: "MISSED", None: ""}[r.met]
        if r.note.startswith("skipped"):
            verdict = "skipped"
        lines.append(
            (
                r.name,
                _fmt(r.ours),
                _fmt(r.baseline),
                _fmt(r.ratio, "ratio"),
                r.unit,
                r.target.text if r.target else "",
                verdict,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    right = {1, 2, 3}
    out = []
    for n, line in enumerate(lines):
        cells = [
            str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i]) for i, c in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_details(rows: list[Result]) -> str:
    """One or two lines per row: the baseline, latencies, sizes, notes."""
    out = []
    for r in rows:
        bits = []
        if r.baseline_name:
            bits.append(f"baseline: {r.baseline_name}")
        for key, value in r.extra.items():
            if isinstance(value, dict) and "p50_ms" in value:
                bits.append(
                    f"{key} p50/p95/p99 {value['p50_ms']:.1f}/{value['p95_ms']:.1f}/{value['p99_ms']:.1f} ms"
                )
            elif isinstance(value, dict) and isinstance(value.get("latency_per_transaction"), dict):
                lat = value["latency_per_transaction"]
                if lat:
                    bits.append(
                        f"{key}: {value.get('events', '?')} events in {value.get('seconds', '?')}s, "
                        f"{value.get('conflicts_redecided', 0)} conflicts, txn p50/p95/p99 "
                        f"{lat['p50_ms']:.2f}/{lat['p95_ms']:.2f}/{lat['p99_ms']:.2f} ms"
                    )
            elif not isinstance(value, dict | list):
                bits.append(f"{key}={value}")
        if r.note:
            bits.append(r.note)
        if bits:
            out.append(f"  {r.name}:")
            out.extend(f"      {b}" for b in bits)
    return "\n".join(out)


def git_revision() -> str:
    """The commit measured, and whether the working tree differed from it."""
    import subprocess

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha} (with uncommitted changes)" if dirty else sha


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------- main


def prepare(ctx: Context) -> None:
    """Shared schema migrated, leftovers of a crashed run gone, the suite's own Redis db."""
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    drop_leftovers(ctx.log)
    use_redis(bench_redis_url())


def run(
    scale: float,
    only: str | None = None,
    out: str | None = None,
    keep: bool = False,
    stdout: TextIO | None = None,
) -> list[Result]:
    import sys

    stdout = stdout or sys.stdout
    chosen = select(only)
    ctx = Context(scale, keep=keep)
    started = time.time()
    revision = git_revision()
    prepare(ctx)
    # The engine runs in this process (and in writers forked from it) as it runs in a
    # worker, so its start-up objects are frozen as a worker's are (intent_project/heap.py).
    heap.settle()
    server = server_settings()
    load_before = os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1):
        ctx.log(
            f"note: load average {load_before[0]:.1f} on {os.cpu_count()} CPUs before starting: "
            "other work shares this machine, the figures will be noisy"
        )
    ctx.log(
        f"scale {scale}; {len(chosen)} benchmark(s); PostgreSQL {server['version']} "
        f"(fsync={server['fsync']}, synchronous_commit={server['synchronous_commit']}, {server['transport']})"
    )
    rows: list[Result] = []
    for bench in chosen:
        t0 = time.monotonic()
        ctx.log(f"== {bench.name}: {bench.description}")
        try:
            rows.extend(bench.run(ctx))
        except Exception as exc:
            traceback.print_exc()
            rows.append(
                Result(name=bench.name, ours=None, unit="", note=f"error: {type(exc).__name__}: {exc}")
            )
        finally:
            try:
                ctx.cleanup()
            except Exception:
                traceback.print_exc()
        ctx.log(f"== {bench.name} done in {time.monotonic() - t0:.1f}s")

    path = Path(out or os.environ.get("BENCH_OUT") or DEFAULT_OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.as_json() for r in rows], indent=2, default=str) + "\n")
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "scale": scale,
        "only": only,
        "git": revision,
        "machine": machine(),
        "postgres": server,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    path.with_name(path.stem + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    stdout.write(
        f"\nBenchmarks (scale {scale}, {meta['seconds']}s, commit {revision}, {machine().get('cpus')} CPUs, "
        f"PostgreSQL {server['version']}, fsync={server['fsync']}, "
        f"synchronous_commit={server['synchronous_commit']}, {server['transport']}; "
        f"load average {meta['load_average_before'][0]} before, {meta['load_average_after'][0]} after)\n\n"
    )
    stdout.write(format_table(rows) + "\n\n")
    details = format_details(rows)
    if details:
        stdout.write(details + "\n\n")
    stdout.write(f"JSON: {path}\n")
    return rows
