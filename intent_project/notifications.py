"""Commands becoming final and projections moving on, pushed to waiting API requests
with LISTEN/NOTIFY.

Whoever makes commands final (the command batch, the settle step after projections)
sends `NOTIFY intent_final, '<schema>:<command id>'` (and the batch
`'<schema>:consumed:<command id>'` for one consumed, for live streams), the projection
runner sends `'<schema>:projection:<name>'` when a checkpoint advances, and every append
to the log `'<schema>:events'` (intent_project/streams.py), in the same transaction as
the change, so the notification is delivered exactly when it is visible. They are sent by
intent_project/announcements.py, in statements that name no tenant table: under Citus
those run on the coordinator, where the listeners are. Each web process runs one
listener thread on its own connection and wakes the requests waiting for those ids: threads
blocked in `Subscription.wait` (the WSGI tier), and asyncio waiters of the front door
(`intent_project/asgi.py`, via `loop.call_soon_threadsafe`), which hold no thread at all.

Notifications are only a shortcut: a waiter still re-reads the row itself, and falls
back to polling (every `FALLBACK_POLL_SECONDS`) when no notification comes, so a lost
notification, a listener reconnecting after a database restart or a transaction that
never commits only makes a wait slower, never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Any, TypeVar

from django.db import connections

log = logging.getLogger(__name__)

CHANNEL = "intent_final"
FALLBACK_POLL_SECONDS = 0.5

_waiters: dict[str, set[threading.Event]] = defaultdict(set)
_async_waiters: dict[str, set[AsyncSubscription]] = defaultdict(set)
_waiters_lock = threading.Lock()
# Every key heard, numbered, the latest HISTORY_SIZE of them: lets a caller that learns
# which key to wait for only after reading (the front door learns it from the view's
# answer) ask whether that key was announced in between, instead of missing it.
HISTORY_SIZE = 4096
EVERYTHING = "*"  # in the history: the listener (re)connected, anything may have changed
_sequence = 0
_history: deque[tuple[int, str]] = deque(maxlen=HISTORY_SIZE)
# The number each key in _history was last heard under: heard_since() looks keys up here
# instead of scanning the whole history on every parked request's check.
_last_heard: dict[str, int] = {}
_listener: threading.Thread | None = None
_listener_lock = threading.Lock()
_listening = threading.Event()
_stopping = threading.Event()


def projection_key(name: str) -> str:
    """The key under which a projection's checkpoint moving forward is announced."""
    return f"projection:{name}"


class Subscription:
    """Waits for notifications of one key; see subscribe()."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def wait(self, timeout: float) -> None:
        """Return when a notification arrived since the last wait (at once if one already
        did), or after `timeout` seconds (at most FALLBACK_POLL_SECONDS while the listener
        is not connected). Re-read what you wait for after each call."""
        if timeout <= 0:
            return
        if not _listening.is_set():
            timeout = min(timeout, FALLBACK_POLL_SECONDS)
        self._event.wait(timeout)
        self._event.clear()


@contextlib.contextmanager
def subscribe(schema_name: str, *keys: Any) -> Iterator[Subscription]:
    """Listen for `keys` (a command id, a projection_key, ...) of one schema in the block;
    a notification of any of them wakes the subscription.

    Subscribe *before* reading the row you wait on: a notification sent between that
    read and the first wait is then kept, instead of being missed until the fallback
    poll."""
    event = threading.Event()
    with contextlib.ExitStack() as stack:
        for key in keys:
            stack.enter_context(_registered(_waiters, f"{schema_name}:{key}", event))
        yield Subscription(event)


W = TypeVar("W")


@contextlib.contextmanager
def _registered(registry: dict[str, set[W]], full_key: str, waiter: W) -> Iterator[None]:
    _ensure_listener()
    with _waiters_lock:
        registry[full_key].add(waiter)
    try:
        yield
    finally:
        with _waiters_lock:
            waiting = registry.get(full_key)
            if waiting is not None:
                waiting.discard(waiter)
                if not waiting:
                    del registry[full_key]


def sequence() -> int:
    """The number of the last key heard (compare with heard_since())."""
    with _waiters_lock:
        return _sequence


def heard_since(number: int, *full_keys: str) -> bool:
    """Whether any of `full_keys` ('<schema>:<key>') may have been announced after
    sequence() returned `number` (True also when the history no longer reaches back that far)."""
    with _waiters_lock:
        if _sequence == number:
            return False
        if not _history or _history[0][0] > number + 1:
            return True
        return any(_last_heard.get(key, 0) > number for key in (EVERYTHING, *full_keys))


def listening() -> bool:
    """Whether the listener is connected (else waiters should poll)."""
    return _listening.is_set()


class AsyncSubscription:
    """An asyncio waiter for '<schema>:<key>'s; see subscribe_async()."""

    def __init__(self, event: asyncio.Event | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = event if event is not None else asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification (or `timeout`); True if one came. Clears it."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        self.event.clear()
        return True

    def _set_threadsafe(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
            self.loop.call_soon_threadsafe(self.event.set)


@contextlib.contextmanager
def subscribe_async(*full_keys: str, event: asyncio.Event | None = None) -> Iterator[AsyncSubscription]:
    """Listen for '<schema>:<key>'s from an event loop (the front door's parked waits and
    streams); a notification of any of them sets `subscription.event` (`event`, if given)."""
    subscription = AsyncSubscription(event)
    with contextlib.ExitStack() as stack:
        for full_key in full_keys:
            stack.enter_context(_registered(_async_waiters, full_key, subscription))
        yield subscription


def ensure_listener() -> None:
    """Start this process's listener thread now (the front door does at start-up)."""
    _ensure_listener()


def _ensure_listener() -> None:
    global _listener
    with _listener_lock:
        if _stopping.is_set():
            return
        if _listener is None or not _listener.is_alive():
            _listener = threading.Thread(target=_listen_forever, name="intent-notify-listener", daemon=True)
            _listener.start()


def _listen_forever() -> None:
    import psycopg

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    while not _stopping.is_set():
        try:
            with psycopg.connect(**params, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                _listening.set()
                # Whatever was announced while no listener was connected is lost: let
                # every waiter look again.
                _wake(EVERYTHING)
                while not _stopping.is_set():
                    for notify in conn.notifies(timeout=1.0):
                        _wake(notify.payload)
        except Exception:
            _listening.clear()
            if not _stopping.is_set():
                log.warning("notification listener lost its connection; reconnecting", exc_info=True)
                time.sleep(1.0)
    _listening.clear()


def stop_listener() -> None:
    """Close the listener's connection (the test database cannot be dropped under it)."""
    _stopping.set()
    listener = _listener
    if listener is not None:
        listener.join(timeout=5)


def _wake(key: str) -> None:
    global _sequence
    with _waiters_lock:
        _sequence += 1
        if len(_history) == HISTORY_SIZE:
            oldest, oldest_key = _history[0]  # about to leave the history
            if _last_heard.get(oldest_key) == oldest:
                del _last_heard[oldest_key]
        _history.append((_sequence, key))
        _last_heard[key] = _sequence
        if key == EVERYTHING:
            events = [event for waiting in _waiters.values() for event in waiting]
            subscriptions = [sub for waiting in _async_waiters.values() for sub in waiting]
        else:
            events = list(_waiters.get(key, ()))
            subscriptions = list(_async_waiters.get(key, ()))
    for event in events:
        event.set()
    for subscription in subscriptions:
        subscription._set_threadsafe()
