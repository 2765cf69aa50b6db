"""A private, disposable deployment for fault tests: real processes, real faults.

The main test session's database is shared and must never be restarted, so the fault tier
brings its own services up in a short temporary directory (``/tmp/flt-<random>``), all
started with the process toolkit (devenv/) that `make run` uses:

* `Services` (one per session): an embedded PostgreSQL, a Redis on a free loopback port,
  and a bootstrapped template database;
* `Cluster` (one per test): a fresh copy of that database, the web server, N Celery workers
  and Celery beat, started as README.md tells a user to start them,

each a real OS process in its own session (process group), so a fault test can
``kill -9`` a worker together with its pool children, stop Redis and start it again on
the same port, or restart PostgreSQL, while the test drives the public HTTP API and reads
the truth straight from SQL.

Clean-up: the fixtures stop everything on success, failure, Ctrl-C and SIGTERM; an atexit
hook is the last resort; the app processes get SIGKILL if pytest itself is killed
(PDEATHSIG); and the daemonised PostgreSQL and Redis of a run that was killed outright are
reaped by `reap_orphans()` on the next run, recognised by the ``owner`` file that records
the pytest pid.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devenv import APP_ROLE, Postgres, Proc, ProcError, Redis, free_port, procs, stop_all
from devenv.procs import pid_alive

TMP_PREFIX = "flt-"
TENANTS = ("acme", "globex")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "intent-admin"

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
    "DJANGO_SETTINGS_MODULE",
)

_SESSION_SECRET_KEY = secrets.token_urlsafe(50)

_live_services: list[Services] = []
_live_lock = threading.Lock()


class ClusterError(RuntimeError):
    pass


def log(message: str) -> None:
    sys.stdout.write(f"[cluster {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_TASK_RECEIVED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] received")
_TASK_FINISHED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] (?:succeeded|raised|retry)")
# The log lines are JSON: the outcome ends where the message's string does.
_TASK_OUTCOME = re.compile(r"Task ([\w.]+)\[[0-9a-f-]{36}\] succeeded in [0-9.e-]+s: ([^\"\n]*)")


class Worker(Proc):
    """A Celery worker whose log says what it is doing."""

    def in_flight_tasks(self) -> int:
        """Tasks this start received but has not finished."""
        text = self.output()
        return len(set(_TASK_RECEIVED.findall(text)) - set(_TASK_FINISHED.findall(text)))

    def exit_reason(self) -> str:
        code = self.popen.returncode if self.popen is not None else None
        lines = [
            line
            for line in self.output().splitlines()
            if "CRITICAL/" in line or "Unrecoverable error" in line
        ]
        return f"exit code {code}: " + (lines[-1].strip()[:300] if lines else "(no CRITICAL line in its log)")


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
        self.pg = Postgres(self.base / "pg")
        self.redis = Redis(self.base / "redis")
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
        self.pg.start()
        # The app processes connect as the role that is not a superuser, as under `make
        # run` / `make test`; the test itself reads and restarts the server as `postgres`.
        self.pg.provision(self.TEMPLATE)
        t_pg = time.monotonic()
        self.redis.start()
        env = app_env(self.pg.url(self.TEMPLATE), self.redis.url())
        for slug in TENANTS:  # idempotent: the second run only adds the second tenant
            result = procs.run_manage(env, "bootstrap", "--tenant", slug)
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
        with self.pg.connect(self.TEMPLATE) as conn:
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(c.relowner), r.rolsuper FROM pg_class c"
                " JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'events_app_event'"
            ).fetchall()
        if owners != [(APP_ROLE, False)]:
            raise ClusterError(f"events tables belong to {owners}, not to the app role {APP_ROLE}")

    def new_database(self) -> str:
        self.databases += 1
        name = f"intent_{self.databases}"
        if self.pg.pid() is None:  # a failed fault test may have left it down
            self.pg.start()
        with self.pg.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.TEMPLATE}" OWNER "{APP_ROLE}"')
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception), self.pg.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        _stop_services(self.pg, self.redis, self.base)
        with _live_lock:
            if self in _live_services:
                _live_services.remove(self)


def _stop_services(pg: Postgres, redis: Redis, base: Path) -> None:
    redis.stop()
    with contextlib.suppress(Exception):
        pg.stop("fast")
    if pg.pid() is not None:
        pg.stop("immediate")
    shutil.rmtree(base, ignore_errors=True)


def app_env(database_url: str, redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env.update(APP_ENV)
    env.update(extra or {})
    # The app refuses to start without a key outside DEBUG; run outside `make test`, the
    # cluster's processes share one made for this session.
    env.setdefault("SECRET_KEY", _SESSION_SECRET_KEY)
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = redis_url
    return env


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
    ) -> None:
        self.services = services
        self.pg = services.pg
        self.redis = services.redis
        self.n_workers = workers
        self.concurrency = concurrency
        self.extra_env = dict(extra_env or {})
        self.name = name
        self.base = services.base / f"c{services.databases + 1}-{name}"[:40]
        self.database = ""
        self.web: Proc | None = None
        self.beat: Proc | None = None
        self.workers: list[Worker] = []
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
        self.redis.start(self.redis.port)
        self.redis.client().flushall()  # no message of an earlier cluster may reach this one
        self.env = app_env(self.pg.url(self.database), self.redis.url(), self.extra_env)
        # Temp files of the app processes (multiprocessing's pymp-* dirs, which a worker
        # killed with -9 never removes) stay inside the session dir and go with it.
        self.env["TMPDIR"] = str(self.services.tmp_dir)
        self.web_port = free_port()
        self.web = Proc("web", procs.web(self.web_port), self.env, self.base / "web.log")
        # `celery -A intent_project worker` serves every queue; several on one host need
        # names of their own, and the pool is sized so the cluster fits the machine.
        self.workers = [
            Worker(
                f"w{i}",
                procs.worker("-n", f"w{i}@%h", "--concurrency", str(self.concurrency)),
                self.env,
                self.base / f"worker-{i}.log",
            )
            for i in range(self.n_workers)
        ]
        beat = procs.beat("--schedule", str(self.base / "beat-schedule"))
        self.beat = Proc("beat", beat, self.env, self.base / "beat.log")
        for proc in self.processes():  # all at once: they boot in parallel
            proc.start()
        for _ in range(3):
            try:
                self.web.wait_healthy(self.web_port, 60)
                break
            except ProcError:
                if "already in use" not in self.web.output():
                    raise
                self.web_port = free_port()  # someone took the free port we picked
                self.web.argv = procs.web(self.web_port)
                self.web.start()
        self._login()
        self.wait_workers_ready(60)
        self.beat.wait_for("beat: Starting", 30)
        log(
            f"{self.name}: up in {time.monotonic() - t0:.1f}s: db {self.database}, web :{self.web_port}, "
            f"{self.n_workers} workers x {self.concurrency}, logs in {self.base}"
        )
        return self

    def _login(self) -> None:
        anon = ApiClient(self.web_port)
        got = anon.request("POST", "/api/auth/token/", {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        anon.close()
        if got.status != 200:
            raise ClusterError(f"cannot get a token: {got.status} {got.body}")
        self.token = got.body["token"]
        self.client = ApiClient(self.web_port, self.token)

    def processes(self) -> list[Proc]:
        return [*self.workers, *(p for p in (self.beat, self.web) if p is not None)]

    def stop(self) -> None:
        """Stop every process of this cluster and drop its database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        t0 = time.monotonic()
        if self.client is not None:
            self.client.close()
        stop_all(self.processes(), timeout=5)  # a warm shutdown is a courtesy here, not a need
        if self.database:
            self.services.drop_database(self.database)
        keep = os.environ.get("FAULTS_KEEP_LOGS")
        if keep:  # opt-in: keep the full logs for a post-mortem (they are deleted otherwise)
            target = Path(keep) / f"{time.strftime('%H%M%S')}-{self.base.name}"
            target.mkdir(parents=True, exist_ok=True)
            for path in [*self.base.glob("*.log"), self.pg.log_path]:
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
        for path in [self.pg.log_path, self.redis.log_path, *(p.log_path for p in self.processes())]:
            if path.exists():
                sys.stdout.write(f"\n----- last {lines} lines of {path.name} -----\n{tail(path, lines)}\n")
        sys.stdout.flush()

    # -- faults ------------------------------------------------------------------------
    def kill_worker(self, index: int, restart: bool = True) -> None:
        """kill -9 the worker's whole process group (main process and pool children)."""
        self.workers[index].kill()
        self.kills += 1
        if restart:
            self.workers[index].start()

    def supervise(self) -> list[tuple[str, str]]:
        """Restart workers that exited on their own, as systemd or Kubernetes would, and
        record why they exited (the worker's last CRITICAL line)."""
        restarted = []
        for worker in self.workers:
            if worker.popen is not None and not worker.running():
                reason = worker.exit_reason()
                worker.kill()  # reap what is left of the group
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
            worker.wait_for("ready.", timeout)

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_redis(self) -> None:
        self.redis.start(self.redis.port)  # the same port: clients reconnect to it

    def queue_lengths(self) -> dict[str, int]:
        client = self.redis.client()
        try:
            return {q: int(client.llen(q)) for q in ("commands", "projections", "sweeps")}
        finally:
            client.close()

    def restart_postgres(self, down_seconds: float = 2.0) -> float:
        return self.pg.restart(down_seconds)

    def dead_processes(self) -> list[str]:
        """Names of app processes that are not running (they should all be)."""
        return [p.name for p in self.processes() if not p.running()]

    def web_healthy_within(self, timeout: float) -> float:
        assert self.web is not None
        return self.web.wait_healthy(self.web_port, timeout)

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
        return self.pg.log_path.stat().st_size if self.pg.log_path.exists() else 0

    def postgres_log_count(self, needle: str, since: int = 0) -> int:
        try:
            with open(self.pg.log_path, "rb") as fh:
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
        with self.pg.connect(self.database) as conn:
            yield conn

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return procs.run_manage(self.env, *args, timeout=timeout)

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
    """Stop and delete the services of a fault run that was killed outright."""
    for base in Path("/tmp").glob(f"{TMP_PREFIX}*"):
        owner = procs.read_int(base / "owner")
        if owner is None or pid_alive(owner):
            continue  # not ours, still being created, or still running
        log(f"reaping leftovers of a killed fault run in {base}")
        _stop_services(Postgres(base / "pg"), Redis(base / "redis"), base)


def stop_all_live() -> None:
    """Last resort (atexit): stop services a crashed fixture did not get to stop."""
    with _live_lock:
        services = list(_live_services)
    for svc in services:
        with contextlib.suppress(Exception):
            svc.stop()
