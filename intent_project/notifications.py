"""Commands becoming final and projections moving on, pushed to waiting API requests
with LISTEN/NOTIFY.

Whoever makes commands final (the command batch, the settle step after projections)
sends `NOTIFY intent_final, '<schema>:<command id>'`, and the projection runner sends
`'<schema>:projection:<name>'` when a checkpoint advances, in the same transaction as
the change, so the notification is delivered exactly when it is visible. Each web process runs one
listener thread on its own connection and wakes the requests waiting for those ids.

Notifications are only a shortcut: a waiter still re-reads the row itself, and falls
back to polling (every `FALLBACK_POLL_SECONDS`) when no notification comes, so a lost
notification, a listener reconnecting after a database restart or a transaction that
never commits only makes a wait slower, never wrong.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db import connection, connections

log = logging.getLogger(__name__)

CHANNEL = "intent_final"
FALLBACK_POLL_SECONDS = 0.5

_waiters: dict[str, set[threading.Event]] = defaultdict(set)
_waiters_lock = threading.Lock()
_listener: threading.Thread | None = None
_listener_lock = threading.Lock()
_listening = threading.Event()
_stopping = threading.Event()


def projection_key(name: str) -> str:
    """The key under which a projection's checkpoint moving forward is announced."""
    return f"projection:{name}"


def notify(schema_name: str, keys: list[str]) -> None:
    """Queue a notification per key, delivered when the current transaction commits."""
    if not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_notify(%s, %s || ':' || key)) FROM jsonb_array_elements_text(%s::jsonb) AS key",
            [CHANNEL, schema_name, json.dumps(keys)],
        )


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
def subscribe(schema_name: str, key: Any) -> Iterator[Subscription]:
    """Listen for `key` (a command id, or a projection_key) of one schema in the block.

    Subscribe *before* reading the row you wait on: a notification sent between that
    read and the first wait is then kept, instead of being missed until the fallback
    poll."""
    _ensure_listener()
    full_key = f"{schema_name}:{key}"
    event = threading.Event()
    with _waiters_lock:
        _waiters[full_key].add(event)
    try:
        yield Subscription(event)
    finally:
        with _waiters_lock:
            waiting = _waiters.get(full_key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del _waiters[full_key]


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
    with _waiters_lock:
        events = list(_waiters.get(key, ()))
    for event in events:
        event.set()
