"""Read the read side from PostgreSQL streaming replicas (DATABASE_REPLICA_URLS).

Only reads a view asks for explicitly go to a replica: a view enters `reading(request)`
once it has authenticated the caller and checked what they may see (those checks, like
every write, every wait on a command's status, every operator action and everything a
worker does, stay on the primary: a membership removed on the primary must be the one the
next request acts with). Inside the block, `ReplicaRouter` sends the ORM's reads to the
replica chosen for the request; writes always go to the primary.

Chosen per request and sticky: the healthy replica picked by the request's id, so the
front door's re-runs of a parked request (which keep the id) read from the same one. A
replica is healthy when it answers, is in recovery (a standby, not a promoted copy) and is
at most DATABASE_REPLICA_MAX_LAG_SECONDS behind. The lag is measured against the primary's
WAL position: a replica that has replayed it is not behind at all, however long ago the
primary last wrote (so an idle primary does not make a caught-up replica look old); one
that has not is as far behind as the older of the oldest primary position this process
recorded that it has not replayed yet, and the commit time of the last transaction it
replayed (its clock against the primary's: keep the hosts' clocks in sync).

Read-your-writes across the two: a projection's checkpoint row commits with its read-model
rows, so it replicates with them; `?min_position=N` is answered from the replica once
the replica's copy of the checkpoint has passed N (projections_app/api.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

log = logging.getLogger(__name__)

_reading: ContextVar[str | None] = ContextVar("intent_replica_reading", default=None)
REQUEST_ATTR = "_intent_replica"
# How often a read-your-writes wait looks at a replica that is only behind by replication.
POLL_SECONDS = 0.02


def aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith("replica_")]


@dataclass
class Health:
    """What this process knows of one replica."""

    usable: bool = False
    lag_seconds: float | None = None
    reason: str = "not checked yet"
    checked_at: float = float("-inf")
    # (monotonic time, primary WAL position) recorded at each check, not replayed yet
    marks: deque[tuple[float, int]] = field(default_factory=deque)


_health: dict[str, Health] = {}
_MARKS = 64
_lock = threading.Lock()


def _primary_position() -> int:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return int(cursor.fetchone()[0])


def _replica_state(alias: str) -> tuple[bool, int | None, float | None]:
    """In recovery?, the WAL position replayed, seconds since the last transaction it
    replayed had committed on the primary."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn,"
            " extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
        )
        recovering, replayed, age = cursor.fetchone()
    return bool(recovering), None if replayed is None else int(replayed), None if age is None else float(age)


def check(alias: str, now: float | None = None) -> Health:
    """Ask the replica (and the primary) now, and remember the answer."""
    now = time.monotonic() if now is None else now
    with _lock:
        health = _health.setdefault(alias, Health())
    try:
        primary = _primary_position()
        recovering, replayed, replay_age = _replica_state(alias)
    except Exception as exc:  # down, refusing, unreachable: skipped until the next check
        with contextlib.suppress(Exception):
            connections[alias].close()
        with _lock:
            health.usable, health.lag_seconds, health.checked_at = False, None, now
            health.reason = f"unavailable ({type(exc).__name__})"
        return health
    with _lock:
        health.checked_at = now
        if not recovering or replayed is None:
            health.usable, health.lag_seconds = False, None
            health.reason = "not a standby (pg_is_in_recovery() is false)"
            return health
        if not health.marks or (primary > health.marks[-1][1] and len(health.marks) < _MARKS):
            health.marks.append((now, primary))  # full: the oldest, which sets the lag, stays
        while health.marks and health.marks[0][1] <= replayed:
            health.marks.popleft()
        behind = bool(health.marks) and health.marks[-1][1] > replayed
        # Behind the primary: at least as old as the oldest position this process saw and
        # the replica has not replayed, and (for a process that had not looked for a while)
        # as old as the last transaction it replayed. The latter overstates the lag after
        # an idle spell (the replica is skipped until the next check), never understates it.
        lag = now - health.marks[0][0] if health.marks else 0.0
        health.lag_seconds = max(lag, replay_age or 0.0) if behind else 0.0
        health.usable = health.lag_seconds <= settings.DATABASE_REPLICA_MAX_LAG_SECONDS
        health.reason = "ok" if health.usable else "lagging"
    return health


def health(alias: str) -> Health:
    """The replica's health, checked again when the last check is older than
    DATABASE_REPLICA_CHECK_SECONDS."""
    now = time.monotonic()
    with _lock:
        known = _health.get(alias)
    if known is not None and now - known.checked_at < settings.DATABASE_REPLICA_CHECK_SECONDS:
        return known
    return check(alias, now)


def usable() -> list[str]:
    return [alias for alias in aliases() if health(alias).usable]


def choose(key: str) -> str | None:
    """The healthy replica for a request whose id is `key`, or None (read the primary)."""
    healthy = usable()
    if not healthy:
        return None
    index = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")
    return healthy[index % len(healthy)]


def _request_key(request: Any) -> str:
    # The front door's re-runs of a parked request keep its X-Request-ID.
    return str(getattr(request, "request_id", "") or id(request))


@contextlib.contextmanager
def reading(request: Any) -> Iterator[str | None]:
    """Route this block's reads to the request's replica (None: there is none usable, so
    they stay on the primary). The replica's connection gets the tenant the primary's has."""
    if not aliases():
        yield None
        return
    alias = getattr(request, REQUEST_ATTR, None)
    if alias is None:
        alias = choose(_request_key(request)) or DEFAULT_DB_ALIAS
        with contextlib.suppress(AttributeError):
            setattr(request, REQUEST_ATTR, alias)
    if alias == DEFAULT_DB_ALIAS or not _connected(alias):
        yield None
        return
    replica = connections[alias]
    tenant = getattr(connection, "tenant", None)
    if tenant is not None:
        replica.set_tenant(tenant)  # type: ignore[attr-defined]
    token = _reading.set(alias)
    try:
        yield alias
    finally:
        _reading.reset(token)


def _connected(alias: str) -> bool:
    """The replica's connection for this thread works (reconnected if it was dropped); if it
    cannot be had, the replica is marked down at once and this request reads the primary."""
    replica = connections[alias]
    try:
        replica.close_if_health_check_failed()
        replica.ensure_connection()
    except Exception:
        log.warning("replica %s is unavailable; reading from the primary", alias, exc_info=True)
        check(alias)
        return False
    return True


@contextlib.contextmanager
def primary() -> Iterator[None]:
    """Inside a `reading` block: read this from the primary after all."""
    token = _reading.set(None)
    try:
        yield
    finally:
        _reading.reset(token)


def current() -> str | None:
    """The replica this block reads from, if any."""
    return _reading.get()


def report() -> dict[str, Any]:
    """For /ready/: how many replicas are configured and usable (never their hosts)."""
    configured = aliases()
    states = {alias: health(alias) for alias in configured}
    return {
        "ok": True,  # a replica that is down is skipped; the primary serves its reads
        "configured": len(configured),
        "usable": sum(1 for h in states.values() if h.usable),
        "replicas": {
            alias: {
                "usable": h.usable,
                "reason": h.reason,
                "lag_seconds": None if h.lag_seconds is None else round(h.lag_seconds, 3),
            }
            for alias, h in states.items()
        },
    }


class ReplicaRouter:
    """Reads inside a `reading` block go to its replica; writes and migrations never go to
    a replica (they are read-only copies: `migrate_schemas` runs on the primary only)."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return _reading.get()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # the same database, copied

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db != DEFAULT_DB_ALIAS else None
