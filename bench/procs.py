"""Real app processes for the benchmarks: a Celery worker and the web server.

Started the way `make run` starts them (`celery -A intent_project worker`, gunicorn with
intent_project/gunicorn_conf.py), each in its own session so the whole process group
(the worker's pool children included) can be stopped; logs go to files under a temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, bench_redis_url


def app_env(**extra: str) -> dict[str, str]:
    """The environment of app processes: ours, with the suite's Redis database."""
    from django.conf import settings

    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["REDIS_URL"] = bench_redis_url()
    env["DATABASE_URL"] = settings.DATABASE_URL
    env["DATABASE_NAME"] = str(settings.DATABASES["default"]["NAME"])
    env["PYTHONUNBUFFERED"] = "1"
    # The benchmarks measure throughput from one client user: no abuse limits in the way.
    env["THROTTLE_COMMANDS_PER_USER"] = ""
    env["THROTTLE_COMMANDS_PER_TENANT"] = ""
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for_output(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            if not self.running():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no '{needle}' after {timeout}s:\n{self.tail()}")

    def pids(self) -> list[int]:
        """The process and all its descendants (a prefork worker's pool children)."""
        if not self.running() or self.popen is None:
            return []
        import psutil

        try:
            root = psutil.Process(self.popen.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None:
            return
        pgid = self.popen.pid
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


class Processes:
    """A temp dir for logs and the processes started in it; `stop()` ends them all."""

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
        self.procs: list[Proc] = []

    def worker(self, name: str = "worker", concurrency: int = 2, **env: str) -> Proc:
        argv = [sys.executable, "-m", "celery", "-A", "intent_project", "worker"]
        argv += ["-Q", "commands,projections,sweeps", "--concurrency", str(concurrency), "--pool", "prefork"]
        argv += ["-n", self.node_name(name), "--loglevel", "INFO"]
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        proc = Proc(name, argv, app_env(**env), self.dir)
        self.procs.append(proc)
        return proc.start()

    @staticmethod
    def node_name(name: str) -> str:
        """The worker's Celery node name (the destination of remote-control commands)."""
        return f"bx-{name}-{os.getpid()}@bench"

    def web(self, port: int, **env: str) -> Proc:
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:intent_project.gunicorn_conf"]
        argv += ["--bind", f"127.0.0.1:{port}"]
        proc = Proc("web", argv, app_env(**env), self.dir)
        self.procs.append(proc)
        return proc.start()

    def stop(self, keep_logs: bool = False) -> None:
        for proc in self.procs:
            proc.stop()
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {p.name: " ".join(p.argv[1:]) for p in self.procs}
