"""Real app processes for the benchmarks: Celery workers and web servers, started with the
process toolkit (devenv/) the way `make run` starts them, logs in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.common import bench_redis_url
from devenv import Proc, free_port, procs, stop_all

__all__ = ["Processes", "free_port"]


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
