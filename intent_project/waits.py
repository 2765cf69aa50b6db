"""Long waits (`?wait=`, `?min_position=&wait=`): a fair share per user, and how a view waits.

Two rules keep waits from starving anyone:

* **A cap per user** (`WAITS_PER_USER`, shared by every web process through Redis): a
  wait that would hold beyond it is refused with 429 `too_many_waits` and `Retry-After`.
  Other users are unaffected. Each user has a sorted set of wait ids scored by the time
  they expire (their deadline plus a grace); it is pruned on every check, so a process
  that dies mid-wait frees its slots when their deadline passes, without any clean-up.
* **Parked, not blocked.** Under the asynchronous front door (`intent_project/asgi.py`,
  what `gunicorn -c python:intent_project.gunicorn_conf` runs) a view never blocks: when
  its answer is not final yet, `Wait.until()` leaves a `ParkOrder` in the request's
  environ and stops the view (`Parked`), which answers at once; the front door then
  waits for the notification on the event loop (holding no thread and no database
  connection) and runs the request again, authentication and permissions included,
  until it is final or its time is up.
  Under plain WSGI (`manage.py runserver`, `gunicorn intent_project.wsgi`) there is no
  front door, and the view blocks its thread as before (development only).

Views call `Wait(...)` around their read and `until()`; the policy (cap, deadline,
parking or blocking) lives here, so every waiting endpoint behaves the same.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings

from intent_project import notifications
from intent_project.api.errors import ApiError
from intent_project.wakeups import redis_client

log = logging.getLogger(__name__)

T = TypeVar("T")

# The front door puts a FrontDoorRun here in the WSGI environ of every request it runs.
ENVIRON_KEY = "intent.front_door"
# A slot outlives its wait's deadline by this much: the front door's last run after the
# deadline still holds it, and a slot of a process that died is dropped this late.
SLOT_GRACE_SECONDS = 5.0


class TooManyWaits(ApiError):
    """429: the user already holds WAITS_PER_USER waits."""

    def __init__(self, limit: int, retry_after: float) -> None:
        super().__init__(
            429,
            "too_many_waits",
            f"You already have {limit} waiting requests in progress; wait for one to finish "
            "(or poll without ?wait=).",
            {"limit": limit},
        )
        # DRF's convention (Throttled.wait): the exception handler sends it as Retry-After.
        self.wait = max(1, math.ceil(retry_after))


class Parked(ApiError):
    """Raised by Wait.until() under the front door once it has left a ParkOrder: the view
    stops there (its answer would be thrown away) and the front door takes over. Never
    reaches a client: the front door answers with a later run."""

    def __init__(self) -> None:
        super().__init__(202, "parked", "Waiting (the front door answers later).")


@dataclass(frozen=True)
class WaitSlot:
    """One of a user's places: a wait's (WAITS_PER_USER) or a live stream's
    (STREAMS_PER_USER, intent_project/streams.py)."""

    owner: str
    id: str
    kind: str = "waits"


@dataclass(frozen=True)
class Places:
    """A kind of place one user holds a limited number of, across every web process."""

    kind: str  # also the Redis key's middle part: intent:<kind>:<owner>
    limit_setting: str
    refusal: Callable[[int, float], ApiError]  # (limit, seconds until one frees) -> the 429

    @property
    def limit(self) -> int:
        return int(getattr(settings, self.limit_setting))


WAITS = Places("waits", "WAITS_PER_USER", TooManyWaits)


@dataclass(frozen=True)
class Recheck:
    """For a request that must not run twice (a POST ?wait): on each wake the front door
    runs the GET of `path` (with its query, same credentials) instead, and answers with
    this status and these headers and, if that GET answers 200, its body (else the
    GET's refusal as it is)."""

    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ParkOrder:
    """What a view asks the front door to wait for before running the request again."""

    key: str  # '<schema>:<key>', as intent_project.notifications announces it
    seconds: float  # from the first run's start
    slot: WaitSlot
    recheck: Recheck | None = None
    # Run again after at most this many seconds even if nothing is announced (a replica
    # that replays what the primary announced: intent_project/db/replicas.py).
    poll: float | None = None


@dataclass
class FrontDoorRun:
    """The front door's side of one run of a request (see ENVIRON_KEY)."""

    final: bool = False  # the time is up: answer what is there now
    slot: WaitSlot | None = None  # already held by this wait (acquired by its first run)
    park: ParkOrder | None = field(default=None)  # set by Wait.until() to ask for a wake
    stream: Any = None  # set by a stream view: what to stream (intent_project/streams.py)


# --------------------------------------------------------------------------- the cap

# KEYS[1]: the user's sorted set. ARGV: wait id, seconds it may hold, limit.
# Runs atomically in Redis, so two processes admitting the same user's 20th and 21st
# wait at the same moment cannot both see 19 (a read-then-write race). Redis's own clock
# scores the slots, so web hosts with skewed clocks agree on what has expired.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local ttl = math.ceil(tonumber(ARGV[2])) + 1
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return {1, '0'}
"""


# KEYS[1]: the user's sorted set. ARGV: slot id, seconds it may hold from now.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local ttl = math.ceil(tonumber(ARGV[2])) + 1
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""


@functools.cache
def _acquire_script() -> Any:
    """The script, sent by its hash (EVALSHA) to whichever client runs it."""
    return redis_client().register_script(_ACQUIRE)


@functools.cache
def _renew_script() -> Any:
    return redis_client().register_script(_RENEW)


def _key(owner: str, kind: str = "waits") -> str:
    return f"intent:{kind}:{owner}"


class _LocalSlots:
    """The cap within this process, used while Redis cannot be reached: waits stay
    bounded per process rather than unbounded (or refused) during a Redis outage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, dict[str, float]] = {}

    def acquire(self, owner: str, slot_id: str, hold: float, limit: int) -> float | None:
        now = time.monotonic()
        with self._lock:
            slots = {k: v for k, v in self._slots.get(owner, {}).items() if v > now}
            if len(slots) >= limit:
                self._slots[owner] = slots
                return min(slots.values()) - now
            slots[slot_id] = now + hold
            self._slots[owner] = slots
            return None

    def release(self, owner: str, slot_id: str) -> None:
        with self._lock:
            slots = self._slots.get(owner)
            if slots is not None:
                slots.pop(slot_id, None)
                if not slots:
                    del self._slots[owner]


_local = _LocalSlots()


def acquire(owner: str, seconds: float, places: Places = WAITS) -> WaitSlot:
    """Take one of `owner`'s places (WAITS_PER_USER by default) for `seconds`, or raise
    the places' refusal (TooManyWaits). Release it with release() when the wait ends (if
    the process dies first, it expires by itself `seconds` + SLOT_GRACE_SECONDS from now;
    a longer holder calls renew())."""
    limit = places.limit
    slot = WaitSlot(owner, uuid.uuid4().hex, places.kind)
    hold = seconds + SLOT_GRACE_SECONDS
    try:
        client = redis_client()
        admitted, retry_after = _acquire_script()(
            keys=[_key(owner, places.kind)], args=[slot.id, hold, limit], client=client
        )
    except Exception:
        log.warning("%s cap: Redis unreachable, limiting per process", places.kind, exc_info=True)
        refused = _local.acquire(_key(owner, places.kind), slot.id, hold, limit)
        if refused is not None:
            raise places.refusal(limit, refused - SLOT_GRACE_SECONDS) from None
        return slot
    if not int(admitted):
        raise places.refusal(limit, float(retry_after) - SLOT_GRACE_SECONDS)
    return slot


def renew(slot: WaitSlot, seconds: float) -> None:
    """Hold `slot` for another `seconds` (a live stream, while it lasts). Never raises."""
    try:
        _renew_script()(
            keys=[_key(slot.owner, slot.kind)],
            args=[slot.id, seconds + SLOT_GRACE_SECONDS],
            client=redis_client(),
        )
    except Exception:
        log.warning("%s cap: could not renew a slot", slot.kind, exc_info=True)


def release(slot: WaitSlot) -> None:
    """Give the place back (never raises: an unreleased slot expires by itself)."""
    _local.release(_key(slot.owner, slot.kind), slot.id)
    try:
        redis_client().zrem(_key(slot.owner, slot.kind), slot.id)
    except Exception:
        log.warning("%s cap: could not release a slot; it expires by itself", slot.kind, exc_info=True)


def in_progress(owner: str, places: Places = WAITS) -> int:
    """How many places `owner` holds now (for tests and operators)."""
    client = redis_client()
    key = _key(owner, places.kind)
    client.zremrangebyscore(key, "-inf", time.time())  # Redis TIME ≈ ours here
    return int(client.zcard(key))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- a view's wait


def front_door_run(request: Any) -> FrontDoorRun | None:
    """The front door's record of this run, or None under plain WSGI (blocking waits)."""
    run = request.META.get(ENVIRON_KEY)
    return run if isinstance(run, FrontDoorRun) else None


class Wait:
    """A view's `?wait`: hold its answer until `ready`, at most `seconds`.

        with Wait(request, schema, command_id, seconds) as waiting:
            command = load()                       # read *inside* the block
            command = waiting.until(command, reload, lambda c: c.is_final)

    Entering the block takes one of the user's WAITS_PER_USER places (429 beyond it)
    before anything else happens, so a refused POST ?wait stores nothing; the place is
    held for the whole request, parked or not. Under WSGI entering also subscribes to
    the key before the first read, so a notification sent between the read and the wait
    is kept, not missed (the front door does the same with notifications.heard_since)."""

    def __init__(self, request: Any, schema_name: str, key: Any, seconds: float) -> None:
        self.request = request
        self.schema_name = schema_name
        self.key = str(key)
        self.seconds = seconds
        self.run = front_door_run(request)
        self._subscription: notifications.Subscription | None = None
        self._slot: WaitSlot | None = None
        self._stack = ExitStack()

    def __enter__(self) -> Wait:
        if self.seconds <= 0:
            return self
        with ExitStack() as undo:  # a refused place leaves no subscription behind
            if self.run is None:
                self._subscription = undo.enter_context(notifications.subscribe(self.schema_name, self.key))
                self._hold(acquire(str(self.request.user.pk), self.seconds), undo)
            elif self.run.slot is None and not self.run.final:
                self._hold(acquire(str(self.request.user.pk), self.seconds), undo)
            else:  # a later run of a parked wait: the front door holds its place
                self._slot = self.run.slot
            self._stack = undo.pop_all()
        return self

    def _hold(self, slot: WaitSlot, stack: ExitStack) -> None:
        self._slot = slot
        stack.callback(self._release)

    def _release(self) -> None:
        if self._slot is not None and (self.run is None or self.run.park is None):
            release(self._slot)  # parked: the front door releases it when the wait ends

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read_again(self, value: T, reread: Callable[[], T]) -> T:
        """`value`, read before the block, made safe to wait on: re-read once the block has
        subscribed (under WSGI), so a change between the two reads is not missed. Under the
        front door `value` as it is: the front door numbered the notifications before this
        run started (notifications.heard_since), so nothing announced after any read of
        this run is missed, and the second read would only cost a query."""
        if self.seconds <= 0 or self.run is not None:
            return value
        return reread()

    def until(
        self,
        value: T,
        reread: Callable[[], T],
        ready: Callable[[T], bool],
        recheck: Recheck | None = None,
        poll: float | None = None,
    ) -> T:
        """`value` once ready (re-read with `reread`), or the last value read when the time
        is up. Under the front door it never blocks: `value` if ready or the time is up,
        else it leaves a ParkOrder and raises Parked."""
        if self.seconds <= 0 or ready(value):
            return value
        assert self._slot is not None, "enter the Wait block before reading"
        if self.run is not None:
            if self.run.final:
                return value
            self.run.park = ParkOrder(
                key=f"{self.schema_name}:{self.key}",
                seconds=self.seconds,
                slot=self._slot,
                recheck=recheck,
                poll=poll,
            )
            raise Parked()
        assert self._subscription is not None
        deadline = time.monotonic() + self.seconds
        while not ready(value) and time.monotonic() < deadline:
            every = (
                notifications.FALLBACK_POLL_SECONDS
                if poll is None
                else min(poll, notifications.FALLBACK_POLL_SECONDS)
            )
            self._subscription.wait(min(every, deadline - time.monotonic()))
            value = reread()
        return value
