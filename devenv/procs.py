"""Processes: start one in its own process group with a log file, wait for it, stop or kill it.

The app's processes are started the way README.md tells a user to start them (`web`,
`worker`, `beat`, `manage` build those command lines), each in its own session, so a
stop or a `kill -9` reaches the whole group (a prefork worker's pool children included).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts: celery, gunicorn
_print_lock = threading.Lock()


def log(message: str) -> None:
    """A devenv message, on stderr (stdout stays clean for `env`'s export lines)."""
    with _print_lock:
        sys.stderr.write(f"[devenv] {message}\n")
        sys.stderr.flush()


def web(port: int) -> list[str]:
    return [str(BIN / "gunicorn"), "-c", "python:intent_project.gunicorn_conf", "--bind", f"127.0.0.1:{port}"]


def worker(*options: str) -> list[str]:
    """`celery -A intent_project worker`: without `-Q` it serves every declared queue."""
    return [str(BIN / "celery"), "-A", "intent_project", "worker", *options]


def beat(*options: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "intent_project", "beat", *options]


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def run_manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python manage.py ...` to its end, output captured."""
    return subprocess.run(
        manage(*args),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def free_port() -> int:
    """A loopback port nobody listens on now (someone may take it before we bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)
    return state not in ("Z", "X")


def cmdline(pid: int) -> str | None:
    """The command line of `pid` joined by spaces, or None without /proc."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def exit_code(returncode: int) -> int:
    """Popen.returncode (negative: killed by that signal) as a shell's exit code."""
    return 128 - returncode if returncode < 0 else returncode


try:  # resolved once: the child between fork and exec should do as little as possible
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child before exec (preexec_fn): receive `sig` when the parent dies, even by
    kill -9, so nothing we start outlives us. Linux sends it when the *thread* that forked
    the child ends, so only the main thread may use it."""
    if _PRCTL is not None:
        _PRCTL(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class ProcError(RuntimeError):
    pass


class Proc:
    """One long-running child in its own session; its output is appended to `log_path`.

    It can be started again after it stopped or was killed; `output()` is what the
    current start wrote."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._offset = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> Proc:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        main = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as out:
            out.write(
                f"\n===== {self.name} start #{self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode()
            )
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a stop or kill -9 reaches its children
                preexec_fn=die_with_parent if main else None,
            )
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for(self, marker: str, timeout: float = 60) -> Proc:
        """Wait until this start's output contains `marker`; ProcError if it exits first."""
        deadline = time.monotonic() + timeout
        while marker not in self.output():
            if not self.running():
                raise ProcError(f"{self.name} exited early:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ProcError(f"{self.name}: no {marker!r} after {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.05)
        return self

    def wait_healthy(self, port: int, timeout: float = 60) -> float:
        """Wait until GET /health/ on `port` answers 2xx; returns the seconds waited."""
        t0 = time.monotonic()
        while not http_ok(f"http://127.0.0.1:{port}/health/"):
            if not self.running():
                raise ProcError(f"{self.name} exited:\n{self.tail()}")
            if time.monotonic() - t0 > timeout:
                raise ProcError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.1)
        return time.monotonic() - t0

    def pids(self) -> list[int]:
        """Every live process of its group (a prefork worker's pool children included)."""
        if not self.running() or self.popen is None:
            return []
        found = [self.popen.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[-1].split()
                if int(fields[2]) == self.popen.pid and int(stat.parent.name) != self.popen.pid:
                    found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        """kill -9 of the whole group, reaped: what a crash or the OOM killer does."""
        if self.popen is None:
            return
        pgid = self.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        # Pool children are reparented to init when their parent dies first: wait for them.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        stop_all([self], timeout)


def stop_all(procs: Iterable[Proc], timeout: float = 10.0) -> None:
    """SIGTERM every process (a warm shutdown for Celery: it finishes its tasks; gunicorn
    stops its workers), all first so they stop in parallel; after `timeout` SIGKILL
    whatever is left of their groups."""
    started = [(proc, proc.popen) for proc in procs if proc.popen is not None]
    for _, popen in started:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for _, popen in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(max(0.1, deadline - time.monotonic()))
    for proc, _ in started:
        proc.kill()
