"""Wake-ups: the port between the write side and the read side, and coalesced messages.

The port. The write side (commands_app, events_app) and the tenant services never import
the read side (projections_app); they announce "events of these types were appended in
this schema" or "this tenant schema was created", and ask "which projections must apply
events of these types before their command is processed?", through `read_side()`.
projections_app registers the answers in its AppConfig.ready(); without a read side
nothing awaits events and announcements go nowhere. import-linter contracts
(pyproject.toml, `lint-imports`) keep the dependency one-way.

Coalescing: at most one queued task per (kind, tenant schema). While the key exists, a
task of that kind for the schema is queued and has not started reading yet, so another
message would be redundant. The task deletes the key *before* it reads (`started`), so
anything committed after that sets the key again and gets its own run. Losing a message
(or Redis) only delays work: the sweep sends wake-ups from the rows.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Set
from typing import Protocol

import redis
from django.conf import settings

log = logging.getLogger(__name__)


class ReadSide(Protocol):
    """What the write side asks of the read side, and tells it."""

    def awaiting(self, event_types: Set[str]) -> frozenset[str]:
        """The projections that must apply events of these types before the command that
        appended them is `processed`."""
        ...

    def events_appended(self, schema_name: str, event_types: Set[str]) -> None:
        """Events of these types were committed in this schema (called after commit)."""
        ...

    def schema_created(self, schema_name: str) -> None:
        """A tenant's schema was just created (its tables migrated and committed)."""
        ...


class _NoReadSide:
    def awaiting(self, event_types: Set[str]) -> frozenset[str]:
        return frozenset()

    def events_appended(self, schema_name: str, event_types: Set[str]) -> None:
        pass

    def schema_created(self, schema_name: str) -> None:
        pass


_read_side: ReadSide = _NoReadSide()


def connect_read_side(read_side: ReadSide) -> None:
    """Called once by the read side's AppConfig.ready()."""
    global _read_side
    _read_side = read_side


def read_side() -> ReadSide:
    return _read_side


# In a Celery worker that consumes the projections queue as well as the commands queue
# (the plain `celery -A intent_project worker`), the read side may run right after a
# commit in the task that committed, instead of being sent a message for another task to
# pick up (settings.PROJECTIONS_INLINE; set by intent_project/celery.py at worker_init, so
# the pool's processes inherit it). Web processes and `-Q commands` workers keep sending.
_inline = False


def serve_inline(enabled: bool) -> None:
    global _inline
    _inline = enabled


def inline() -> bool:
    """Whether this process may run the read side itself after a commit."""
    return _inline


# A lost message blocks wake-ups of its kind at most this long (the sweep covers it).
TTL_SECONDS = 30


@functools.cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _key(kind: str, schema_name: str) -> str:
    return f"intent:{kind}:wake:{schema_name}"


def request(kind: str, schema_name: str, send: Callable[[], object]) -> None:
    """Call `send()` (publish the task) unless one of this kind is already queued."""
    key = _key(kind, schema_name)
    try:
        if not redis_client().set(key, 1, nx=True, ex=TTL_SECONDS):
            return
    except Exception:
        log.warning("could not coalesce %s wake-up for %s; sending anyway", kind, schema_name, exc_info=True)
    try:
        send()
    except Exception:  # broker down: the rows are the truth; the sweep sends it later
        log.warning("could not wake %s in %s; the sweep will", kind, schema_name, exc_info=True)
        with contextlib.suppress(Exception):
            redis_client().delete(key)


def started(kind: str, schema_name: str) -> None:
    """Called by the task before it reads: later commits must be able to wake it again."""
    try:
        redis_client().delete(_key(kind, schema_name))
    except Exception:
        log.warning("could not clear the %s wake key of %s", kind, schema_name, exc_info=True)
