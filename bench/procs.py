"""Real app processes for the benchmarks: Celery workers and web servers, started with the
process toolkit (devenv/) the way `make run` starts them, logs in a temp dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_redis_url
from devenv import Proc, free_port, procs, stop_all

__all__ = ["CpuMeter", "Processes", "free_port"]


def app_env(**extra: str) -> dict[str, str]:
    """The environment of app processes: ours, with the suite's Redis database."""
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        REDIS_URL=bench_redis_url(),
        DATABASE_URL=settings.DATABASE_URL,
        DATABASE_NAME=str(settings.DATABASES["default"]["NAME"]),
        PYTHONUNBUFFERED="1",
        # The benchmarks measure throughput from one client user: no abuse limits in the way.
        THROTTLE_COMMANDS_PER_USER="",
        THROTTLE_COMMANDS_PER_TENANT="",
    )
    return {**env, **extra}


class Processes:
    """A temp dir for logs and the processes started in it; `stop()` ends them all."""

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
        self.procs: list[Proc] = []

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, app_env(**env), self.dir / f"{name}.log")
        self.procs.append(proc)
        return proc.start()

    def worker(self, name: str = "worker", concurrency: int = 2, **env: str) -> Proc:
        return self._start(
            name, procs.worker("-n", self.node_name(name), "--concurrency", str(concurrency)), env
        )

    @staticmethod
    def node_name(name: str) -> str:
        """The worker's Celery node name (the destination of remote-control commands)."""
        return f"bx-{name}-{os.getpid()}@bench"

    def web(self, port: int, **env: str) -> Proc:
        return self._start(f"web-{port}", procs.web(port), env)

    def stop(self, keep_logs: bool = False) -> None:
        stop_all(self.procs, timeout=15)
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)


class CpuMeter:
    """CPU seconds each part of the system spends over a window (psutil): the app
    processes started here (with their children), PostgreSQL's and Redis's processes on
    this machine, and this process (the benchmark's client threads).

    `start()` and `stop()` sample every process; one that ends inside the window loses
    what it spent there, one that starts inside it counts from zero. With one tenant and
    a steady load both are rare (connections are pooled)."""

    def __init__(self, apps: dict[str, Proc]) -> None:
        self.apps = apps
        self._before: dict[tuple[str, int], float] = {}
        self._system_before: Any = None
        self._t0 = 0.0
        self.seconds: dict[str, float] = {}
        self.busy = 0.0  # fraction of every core busy over the window, system-wide
        self.window = 0.0

    def _groups(self) -> dict[str, list[Any]]:
        import psutil

        groups: dict[str, list[Any]] = {name: [] for name in (*self.apps, "postgres", "redis", "client")}
        for name, proc in self.apps.items():
            if proc.pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(proc.pid)
                groups[name] += [top, *top.children(recursive=True)]
        for p in psutil.process_iter(["name"]):
            if p.info["name"] == "postgres":
                groups["postgres"].append(p)
            elif p.info["name"] and p.info["name"].startswith("redis-server"):
                groups["redis"].append(p)
        groups["client"].append(psutil.Process(os.getpid()))
        return groups

    def _sample(self) -> dict[tuple[str, int], float]:
        import psutil

        out = {}
        for name, members in self._groups().items():
            for p in members:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    out[(name, p.pid)] = t.user + t.system
        return out

    def start(self) -> None:
        import psutil

        self._system_before = psutil.cpu_times()
        self._before = self._sample()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        import psutil

        after = self._sample()
        self.window = time.perf_counter() - self._t0
        system = psutil.cpu_times()
        self.seconds = {}
        for (name, pid), spent in after.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - self._before.get((name, pid), 0.0)
        idle = (system.idle + getattr(system, "iowait", 0.0)) - (
            self._system_before.idle + getattr(self._system_before, "iowait", 0.0)
        )
        total = sum(system) - sum(self._system_before)
        self.busy = 1.0 - idle / total if total > 0 else 0.0

    def per(self, count: int) -> dict[str, Any]:
        """CPU milliseconds per unit of work (a command, a request) for each part, and
        how busy the machine was."""
        if not count:
            return {}
        parts = {name: round(1000 * spent / count, 2) for name, spent in self.seconds.items()}
        return {
            "cpu_ms_per_unit": parts,
            "cpu_ms_per_unit_total": round(sum(parts.values()), 2),
            "machine_busy": round(self.busy, 3),
        }
