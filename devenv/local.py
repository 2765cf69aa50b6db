"""This checkout's services for `make run` and `make test`, shared by every invocation.

All state lives under ``<repo>/.var/`` (git-ignored; ``DEVENV_VAR`` names another place)::

    .var/pg/            PostgreSQL data directory (also holds its socket and its log)
    .var/redis/         redis.pid, redis.port, redis.log
    .var/run/           devenv.lock, pg.policy, redis.policy, clients/<pid>
    .var/secret_key     a random SECRET_KEY made on first use (mode 0600)
    .var/summary.txt, celerybeat.pid, celerybeat-schedule   `make run`'s

``make run`` in one terminal and ``make test`` in another share the same services, and
neither may pull them out from under the other. Every invocation that uses them registers
in ``.var/run/clients/<pid>`` while it runs. A service it starts gets the policy ``auto``:
when the last live client leaves, ``auto`` services are stopped, so the invocation that
started a service stops it unless another one still uses it, in which case the last one
out does. Clients that died (``kill -9``) are pruned by pid + start time, so a crash never
pins the services forever: the next invocation adopts and later stops them. Services
started by ``env`` get the policy ``keep`` and are only stopped by ``stop``. All of this
bookkeeping happens under an exclusive ``flock`` on ``.var/run/devenv.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from devenv.postgres import APP_ROLE, Postgres
from devenv.procs import ROOT, log, pid_alive
from devenv.redis_server import Redis

VAR = Path(os.environ.get("DEVENV_VAR") or ROOT / ".var").resolve()
RUN = VAR / "run"
CLIENTS = RUN / "clients"
SECRET_KEY_FILE = VAR / "secret_key"
DB_NAME = "intent"
AUTO = "auto"  # stop when the last client leaves
KEEP = "keep"  # leave running until `stop`

PG = Postgres(VAR / "pg")
REDIS = Redis(VAR / "redis")


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """The exclusive lock over start, stop and the bookkeeping; the kernel releases a
    flock when its process dies, so a crash cannot leave it held."""
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "devenv.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _start_time(pid: int) -> str:
    """The kernel start time of `pid`: with the pid, it names a process even after pid reuse."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        return ""


def live_clients() -> list[int]:
    """Pids of the live registered clients; the entries of dead ones are removed (under the lock)."""
    alive = []
    for entry in CLIENTS.iterdir() if CLIENTS.is_dir() else ():
        try:
            pid, recorded = int(entry.name), entry.read_text().strip()
        except (ValueError, OSError):
            entry.unlink(missing_ok=True)
            continue
        current = _start_time(pid)
        if pid_alive(pid) and (not recorded or not current or current == recorded):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return sorted(alive)


def policy(service: str) -> str | None:
    with contextlib.suppress(OSError):
        return (RUN / f"{service}.policy").read_text().strip() or None
    return None


def set_policy(service: str, value: str | None) -> None:
    path = RUN / f"{service}.policy"
    if value is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(value + "\n")


def local_secret_key() -> str:
    """This checkout's SECRET_KEY: random, made once, kept in .var/secret_key (0600).

    The settings refuse to start without a key outside DEBUG; a key per checkout keeps
    `make run`, `make test`, the benchmarks and the fault tier working out of the box
    without a key anyone can read in the source. Under the lock, so two first runs at
    once cannot hand their children different keys."""
    with state_lock():
        try:
            key = SECRET_KEY_FILE.read_text().strip()
        except FileNotFoundError:
            key = ""
        if not key:
            key = secrets.token_urlsafe(50)
            partial = SECRET_KEY_FILE.with_suffix(".tmp")
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(key + "\n")
            os.replace(partial, SECRET_KEY_FILE)
            log(f"generated a SECRET_KEY for this checkout in {SECRET_KEY_FILE}")
        SECRET_KEY_FILE.chmod(0o600)
    return key


def app_env() -> dict[str, str]:
    """What the app processes need besides the service URLs: SECRET_KEY, unless it is set."""
    return {} if os.environ.get("SECRET_KEY") else {"SECRET_KEY": local_secret_key()}


class Session:
    """The services one invocation uses: acquire() starts or reuses them and returns the
    environment for its children; release() stops `auto` services nobody else uses.

    DATABASE_URL / REDIS_URL, when set, are used as they are and that service is not
    started. A DATABASE_URL from outside should name a role that is not a superuser
    (README, "Running in production"); the embedded server's own `postgres` only
    provisions the app role `intent`, which everything started here connects as."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep  # `env`: leave the services running, marked `keep`
        self.registered = False
        self.env: dict[str, str] = {}

    def acquire(self) -> dict[str, str]:
        urls = {key: os.environ.get(key, "") for key in ("DATABASE_URL", "REDIS_URL")}
        if all(urls.values()):
            log("DATABASE_URL and REDIS_URL are set: using them, no embedded services")
        else:
            with state_lock():
                if not self.keep:
                    CLIENTS.mkdir(parents=True, exist_ok=True)
                    (CLIENTS / str(os.getpid())).write_text(_start_time(os.getpid()) + "\n")
                    self.registered = True
                if urls["DATABASE_URL"]:
                    log("DATABASE_URL is set: not starting embedded PostgreSQL")
                else:
                    urls["DATABASE_URL"] = self._ensure("pg", PG.pid, PG.start, lambda: PG.url(DB_NAME))
                    # Also the health check of a server that was already running.
                    PG.provision(DB_NAME, APP_ROLE)
                if urls["REDIS_URL"]:
                    log("REDIS_URL is set: not starting embedded Redis")
                else:
                    urls["REDIS_URL"] = self._ensure("redis", REDIS.pid, REDIS.start, REDIS.url)
        self.env = {**urls, **app_env()}
        return self.env

    def _ensure(
        self, service: str, pid: Callable[[], int | None], start: Callable[[], None], url: Callable[[], str]
    ) -> str:
        """Start `service` unless it runs; record the policy if this call started it (before
        anything else can fail, so a started service is never orphaned) or asks to keep it."""
        running = pid()
        if running is None or self.keep:
            set_policy(service, KEEP if self.keep else AUTO)
        start()  # or, if it runs, wait until it is ready
        log(f"{service} {'reusing' if running else 'started'} (pid {pid()}): {url()}")
        return url()

    def release(self) -> None:
        if not self.registered:
            return
        with state_lock():
            (CLIENTS / str(os.getpid())).unlink(missing_ok=True)
            self.registered = False
            others = live_clients()
            if others:
                log(f"leaving the embedded services running for other clients (pids {others})")
                return
            if policy("pg") == AUTO:
                stop_service("pg")
            if policy("redis") == AUTO:
                stop_service("redis")

    def child_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def stop_service(service: str) -> bool:
    """Stop one embedded service, whoever started it (under the lock); True if it ran."""
    was_running = PG.stop("fast") if service == "pg" else REDIS.stop()
    set_policy(service, None)
    if was_running:
        log(f"{service} stopped")
    return was_running


def status() -> list[str]:
    pg, redis = PG.pid(), REDIS.pid()
    with state_lock():
        clients = live_clients()
    return [
        f"postgres: running (pid {pg}, policy {policy('pg')})\n  DATABASE_URL={PG.url(DB_NAME)}"
        if pg
        else f"postgres: not running (data dir {PG.pgdata})",
        f"redis:    running (pid {redis}, policy {policy('redis')})\n  REDIS_URL={REDIS.url()}"
        if redis
        else "redis:    not running",
        f"clients:  {', '.join(map(str, clients)) if clients else 'none'}",
    ]
