"""Live streams (Server-Sent Events): a tenant's log as it grows, and one command's status.

    GET /t/<tenant>/api/events/stream/           events_app/api.py
    GET /t/<tenant>/api/commands/<id>/stream/    commands_app/api.py

The views decide (who asks, what it may see, from where) and leave an order here, as a
wait leaves its ParkOrder; the front door (intent_project/asgi.py) serves the stream on its
event loop, so a subscriber holds no thread and no database connection between events.

**Events.** Each web process keeps one Feed per tenant schema that has subscribers: a ring
of the latest events, serialized once as the events API returns them, moved forward by one
read of the log per notification (`<schema>:events`, sent with every append to the log,
store and imports alike, and delivered when its transaction commits:
intent_project/announcements.py). Each subscriber takes
from the ring what its filters and read scope let it see: one query per append for all of
a schema's subscribers, never a query per subscriber, never a poll of the table. A
subscriber behind the ring (it resumed from an old position, or a slow client fell behind
a burst larger than the ring) catches up from the database first, its filters and scope
in SQL, a page at a time.

**Order, gaps, resuming.** Positions are handed out under the tenant's append lock and
commit in position order (events_app/store.py), so reading `position > last` never skips
an event. Each event frame carries `id: <position>`; a client that reconnects with
`Last-Event-ID` (browsers' EventSource does by itself) or `?after=` gets exactly the
events after it: nothing missed, nothing twice.

**Commands.** The command's GET runs again whenever the command is announced (consumed:
`<schema>:consumed:<id>`; final: `<schema>:<id>`), and each status it has not sent yet
goes out as a `status` frame; the stream ends after a final one.

**Access.** A stream's request runs through Django as any other (authentication,
membership, read scope, validation), and again every STREAM_RECHECK_SECONDS (a command
stream's every run is one): a member removed or a token revoked ends the stream with an
`error` frame holding the API's error body. Each stream holds one of the user's
STREAMS_PER_USER places (shared by every web process through Redis, as waits are); beyond
it the request is refused with 429 `too_many_streams`. A `: keep-alive` comment every
STREAM_HEARTBEAT_SECONDS keeps proxies from closing a quiet stream.

Under plain WSGI (`manage.py runserver`) there is no front door: the views stream from a
generator that holds its thread (blocking_events / blocking_command), for development.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from intent_project import notifications, waits
from intent_project.api.errors import ApiError, error_response
from intent_project.api.params import POSITION_MAX

log = logging.getLogger(__name__)

T = TypeVar("T")

PAGE = 500  # events read (and sent) at a time
RING_SIZE = 10_000  # events a Feed keeps; a subscriber further behind reads the database
# A feed reads the log at most this often: under a steady flow of appends each subscriber
# gets one write per interval rather than one per transaction (its cost is per write).
FEED_READS_APART_SECONDS = 0.2
RETRY_MILLISECONDS = 2000  # sent first: how soon an EventSource reconnects
HEARTBEAT = b": keep-alive\n\n"
FINAL_STATUSES = frozenset({"processed", "failed"})
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each frame on at once
]


class TooManyStreams(ApiError):
    """429: the user already holds STREAMS_PER_USER live streams."""

    def __init__(self, limit: int, retry_after: float) -> None:
        super().__init__(
            429,
            "too_many_streams",
            f"You already have {limit} live streams open; close one first.",
            {"limit": limit},
        )
        self.wait = max(1, int(retry_after + 0.999))


STREAMS = waits.Places("streams", "STREAMS_PER_USER", TooManyStreams)


def hold_seconds() -> float:
    """How long a stream's place is held between renewals (renewed at every recheck)."""
    return float(settings.STREAM_RECHECK_SECONDS) * 2


def frame(data: bytes, event: str, position: int | None = None) -> bytes:
    """One SSE message. `data` is one line of JSON (no newline can occur in it)."""
    head = b"id: %d\n" % position if position is not None else b""
    return head + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def opening() -> bytes:
    return b"retry: %d\n\n" % RETRY_MILLISECONDS


# --------------------------------------------------------------------------- what streams


@dataclass(frozen=True)
class StreamedEvent:
    """One event of the log as a stream sends it, with what subscribers filter on."""

    position: int
    data: bytes  # the event as the events API returns it (JSON)
    type: str
    aggregate_type: str
    aggregate_id: str
    correlation_id: str | None
    sent_by: str | None  # the user whose command recorded it (read scopes count it as theirs)

    @functools.cached_property
    def frame(self) -> bytes:
        """Its SSE message, made once for every subscriber."""
        return frame(self.data, "event", self.position)


class EventLog(Protocol):
    """A tenant's log, read from a thread of the front door's pool (events_app/stream.py)."""

    @property
    def schema(self) -> str: ...

    def head(self) -> int: ...

    def read(self, after: int, limit: int) -> list[StreamedEvent]: ...


class EventSelection(Protocol):
    """What one subscriber receives: its filters and read scope."""

    def accepts(self, event: StreamedEvent) -> bool: ...

    def catch_up(self, after: int, upto: int, limit: int) -> list[StreamedEvent]: ...


@dataclass(frozen=True)
class EventStreamOrder:
    after: int
    log: EventLog
    selection: EventSelection
    slot: waits.WaitSlot


@dataclass(frozen=True)
class CommandStreamOrder:
    keys: tuple[str, ...]  # '<schema>:<key>' notifications announcing a change of the command
    path: str  # the command's GET; its answer is each status frame's data
    slot: waits.WaitSlot


class Door(Protocol):
    """What the front door lends a stream (intent_project/asgi.py)."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the pool (a share of its threads, as parked waits' runs)."""
        ...

    async def again(
        self, environ: dict[str, Any], slot: waits.WaitSlot, path: str | None = None
    ) -> tuple[int, bytes, waits.FrontDoorRun]:
        """The request run again (or a GET of `path` with its credentials): status, body, run."""
        ...


Send = Callable[[dict[str, Any]], Awaitable[None]]


# --------------------------------------------------------------------------- the feeds


class Feed:
    """The latest events of one schema, shared by its subscribers in this process.

    The ring holds the events with positions in (start, head], in order."""

    def __init__(self, log: EventLog, door: Door) -> None:
        self.schema = log.schema
        self.log = log
        self.door = door
        self.positions: list[int] = []
        self.events: list[StreamedEvent] = []
        self.head: int | None = None  # None until the first read
        self.start = 0
        self.wakes: set[asyncio.Event] = set()  # one per subscriber, set when the feed moves on
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return len(self.wakes)

    def after(self, position: int, limit: int = PAGE) -> list[StreamedEvent]:
        index = bisect.bisect_right(self.positions, position)
        return self.events[index : index + limit]

    def follow(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._follow())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _announce(self) -> None:
        for wake in self.wakes:
            wake.set()

    def _keep(self, rows: list[StreamedEvent]) -> None:
        self.positions.extend(row.position for row in rows)
        self.events.extend(rows)
        self.head = rows[-1].position
        excess = len(self.events) - RING_SIZE
        if excess > RING_SIZE // 4:  # trim in steps, not on every read
            self.start = self.positions[excess - 1]
            del self.positions[:excess], self.events[:excess]

    async def _follow(self) -> None:
        key = f"{self.schema}:events"
        loop = asyncio.get_running_loop()
        last_read = -FEED_READS_APART_SECONDS
        with notifications.subscribe_async(key) as subscription:
            while True:
                # Appends close together are read (and sent to every subscriber) together.
                await asyncio.sleep(max(0.0, last_read + FEED_READS_APART_SECONDS - loop.time()))
                last_read = loop.time()
                heard = notifications.sequence()
                try:
                    await self._read()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning(
                        "stream feed of %s: reading the log failed; trying again", self.schema, exc_info=True
                    )
                    await asyncio.sleep(1.0)
                    continue
                if notifications.heard_since(heard, key):
                    continue
                # Notifications wake the feed; the timeout only covers one that was lost.
                timeout = float(settings.STREAM_HEARTBEAT_SECONDS)
                if not notifications.listening():
                    timeout = notifications.FALLBACK_POLL_SECONDS
                await subscription.wait(timeout)

    async def _read(self) -> None:
        if self.head is None:
            self.head = self.start = await self.door.call(self.log.head)
            self._announce()
            return
        while True:
            rows = await self.door.call(self.log.read, self.head, PAGE)
            if rows:
                self._keep(rows)
                self._announce()
            if len(rows) < PAGE:
                return


class _Feeds:
    """This process's feeds, one per schema with subscribers (event loop only)."""

    def __init__(self) -> None:
        self._feeds: dict[str, Feed] = {}

    def join(self, log: EventLog, door: Door, wake: asyncio.Event) -> Feed:
        feed = self._feeds.get(log.schema)
        if feed is None:
            feed = self._feeds[log.schema] = Feed(log, door)
        feed.wakes.add(wake)
        feed.follow()
        return feed

    def leave(self, feed: Feed, wake: asyncio.Event) -> None:
        feed.wakes.discard(wake)
        if feed.subscribers <= 0 and self._feeds.get(feed.schema) is feed:
            del self._feeds[feed.schema]
            feed.stop()

    def open(self) -> int:
        return sum(feed.subscribers for feed in self._feeds.values())


feeds = _Feeds()


# --------------------------------------------------------------------------- serving, asynchronously


def response_headers(first: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The stream's headers: the first run's (request id, security headers) but its body's."""
    dropped = {b"content-type", b"content-length", b"cache-control", b"vary", b"allow"}
    return [(k, v) for k, v in first if k not in dropped] + SSE_HEADERS


class _Stream:
    """What both kinds of stream share: the response, heartbeats, the client leaving."""

    def __init__(self, send: Send, gone: asyncio.Future[None], slot: waits.WaitSlot) -> None:
        self.send = send
        self.gone = gone
        self.slot = slot
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.next_beat = loop.time() + float(settings.STREAM_HEARTBEAT_SECONDS)
        self.wake = asyncio.Event()  # set by whatever the stream waits for, and by the client leaving
        gone.add_done_callback(lambda _: self.wake.set())

    async def start(self, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": response_headers(headers)})
        await self.write(opening())

    async def write(self, body: bytes) -> None:
        await self.send({"type": "http.response.body", "body": body, "more_body": True})
        self.next_beat = self.loop.time() + float(settings.STREAM_HEARTBEAT_SECONDS)

    async def end(self, last: bytes = b"") -> None:
        await self.send({"type": "http.response.body", "body": last, "more_body": False})

    async def pause(self, until: float) -> bool:
        """Until `wake` is set (left set: the caller clears it before it looks again), a
        heartbeat is due or `until`; False if the client left. No task per pause: hundreds
        of subscribers wake for each batch of events."""
        if not self.wake.is_set():
            timeout = max(0.0, min(until, self.next_beat) - self.loop.time())
            timer = self.loop.call_later(timeout, self.wake.set)
            try:
                await self.wake.wait()
            finally:
                timer.cancel()
        if self.gone.done():
            return False
        if self.loop.time() >= self.next_beat:
            await self.write(HEARTBEAT)
        return True

    async def refuse(self, body: bytes) -> None:
        """End the stream with an `error` frame holding the API's error answer."""
        await self.end(frame(body.strip() or b"{}", "error"))


async def serve_events(
    door: Door,
    environ: dict[str, Any],
    order: EventStreamOrder,
    headers: list[tuple[bytes, bytes]],
    send: Send,
    gone: asyncio.Future[None],
) -> None:
    stream = _Stream(send, gone, order.slot)
    feed = feeds.join(order.log, door, stream.wake)
    position, selection = order.after, order.selection
    recheck_every = float(settings.STREAM_RECHECK_SECONDS)
    next_check = stream.loop.time() + recheck_every
    try:
        await stream.start(headers)
        while not gone.done():
            stream.wake.clear()
            if feed.head is not None and position < feed.start:
                # Behind the ring: from the database, filtered there, up to where it begins.
                upto = feed.start
                rows = await door.call(selection.catch_up, position, upto, PAGE)
                position = rows[-1].position if len(rows) == PAGE else upto
                if rows:
                    await stream.write(b"".join(row.frame for row in rows))
                continue
            if feed.head is not None and position < feed.head:
                items = feed.after(position)
                if items:
                    position = items[-1].position
                    frames = [item.frame for item in items if selection.accepts(item)]
                    if frames:
                        await stream.write(b"".join(frames))
                else:
                    position = feed.head
                continue
            if not await stream.pause(next_check):
                return
            if stream.loop.time() >= next_check:
                status, body, run = await door.again(environ, order.slot)
                again = run.stream
                if status != 200 or not isinstance(again, EventStreamOrder):
                    await stream.refuse(body)
                    return
                selection = again.selection
                await door.call(waits.renew, order.slot, hold_seconds())
                next_check = stream.loop.time() + recheck_every
    finally:
        feeds.leave(feed, stream.wake)


async def serve_command(
    door: Door,
    environ: dict[str, Any],
    order: CommandStreamOrder,
    headers: list[tuple[bytes, bytes]],
    send: Send,
    gone: asyncio.Future[None],
) -> None:
    stream = _Stream(send, gone, order.slot)
    loop = stream.loop
    recheck_every = float(settings.STREAM_RECHECK_SECONDS)
    next_check = loop.time() + recheck_every
    sent: str | None = None
    with notifications.subscribe_async(*order.keys, event=stream.wake):
        await stream.start(headers)
        while not gone.done():
            stream.wake.clear()
            heard = notifications.sequence()
            # The whole GET, authentication and read scope included, on every change.
            status, body, _ = await door.again(environ, order.slot, order.path)
            if status != 200:
                await stream.refuse(body)
                return
            now = json.loads(body).get("status")
            if now != sent:
                sent = now
                if now in FINAL_STATUSES:
                    await stream.end(frame(body, "status"))
                    return
                await stream.write(frame(body, "status"))
            if loop.time() >= next_check:
                await door.call(waits.renew, order.slot, hold_seconds())
                next_check = loop.time() + recheck_every
            if notifications.heard_since(heard, *order.keys):
                continue
            # Until announced; without a listener, poll. Look again at the recheck anyway.
            until = next_check
            if not notifications.listening():
                until = min(until, loop.time() + notifications.FALLBACK_POLL_SECONDS)
            # Woken by a notification, or by the timer (then the GET runs again anyway).
            if not await stream.pause(until):
                return


# --------------------------------------------------------------------------- plain WSGI


class Blocking:
    """A stream for a WSGI server, which gives its place back when closed, even unstarted
    (a generator's `finally` runs only once it started)."""

    def __init__(self, frames: Iterator[bytes], slot: waits.WaitSlot) -> None:
        self.frames = frames
        self.slot = slot

    def __iter__(self) -> Iterator[bytes]:
        return self.frames

    def close(self) -> None:
        try:
            self.frames.close()  # type: ignore[attr-defined]
        finally:
            waits.release(self.slot)


def blocking_events(order: EventStreamOrder) -> Blocking:
    """The events stream for a WSGI server: holds its thread (runserver, development)."""
    return Blocking(_blocking_events(order), order.slot)


def _blocking_events(order: EventStreamOrder) -> Iterator[bytes]:
    heartbeat = float(settings.STREAM_HEARTBEAT_SECONDS)
    try:
        yield opening()
        position = order.after
        with notifications.subscribe(order.log.schema, "events") as subscription:
            beat = time.monotonic() + heartbeat
            while True:
                head = order.log.head()
                while position < head:
                    rows = order.selection.catch_up(position, head, PAGE)
                    position = rows[-1].position if len(rows) == PAGE else head
                    if rows:
                        yield b"".join(row.frame for row in rows)
                        beat = time.monotonic() + heartbeat
                subscription.wait(max(0.0, beat - time.monotonic()))
                if time.monotonic() >= beat:
                    yield HEARTBEAT
                    beat = time.monotonic() + heartbeat
                    waits.renew(order.slot, hold_seconds())
    finally:
        waits.release(order.slot)


def blocking_command(
    schema: str, command_id: str, slot: waits.WaitSlot, read: Callable[[], bytes | None]
) -> Blocking:
    """The command stream for a WSGI server; `read` answers the command's JSON, or None
    once the caller may no longer see it."""
    return Blocking(_blocking_command(schema, command_id, slot, read), slot)


def _blocking_command(
    schema: str, command_id: str, slot: waits.WaitSlot, read: Callable[[], bytes | None]
) -> Iterator[bytes]:
    heartbeat = float(settings.STREAM_HEARTBEAT_SECONDS)
    try:
        yield opening()
        sent: str | None = None
        with notifications.subscribe(schema, command_id, f"consumed:{command_id}") as subscription:
            while True:
                body = read()
                if body is None:
                    gone = error_response(404, "not_found", f"No command {command_id} in this tenant.")
                    yield frame(gone.content, "error")
                    return
                status = json.loads(body).get("status")
                if status != sent:
                    sent = status
                    yield frame(body, "status")
                    if status in FINAL_STATUSES:
                        return
                else:
                    yield HEARTBEAT
                subscription.wait(heartbeat)
                waits.renew(slot, hold_seconds())
    finally:
        waits.release(slot)


# --------------------------------------------------------------------------- the views' side


class StreamView(GenericAPIView):
    """A stream's view: refusals answer JSON in the one error shape whatever the client
    accepts (an EventSource asks for text/event-stream); the stream itself is not DRF's."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        renderer = JSONRenderer()
        return renderer, renderer.media_type


def take_place(request: Request) -> waits.WaitSlot:
    """One of the caller's STREAMS_PER_USER places (429 beyond), or the one a recheck of a
    stream already holds. Taken last, after every check a view makes: a refused stream holds
    nothing."""
    run = waits.front_door_run(request)
    if run is not None and run.slot is not None:
        return run.slot
    return waits.acquire(str(request.user.pk), hold_seconds(), STREAMS)


def resume_from(request: Request, after: int | None) -> int:
    """Where a stream starts: after `Last-Event-ID` (an EventSource reconnecting sends the
    last id it saw, on the same URL, so it wins over `?after=`), else `?after=`, else 0."""
    header = request.headers.get("Last-Event-ID", "").strip()
    if not header:
        return after or 0
    if not header.isdigit() or int(header) > POSITION_MAX:
        message = "Last-Event-ID must be an event position (a whole number, 0 or more)."
        raise ApiError(400, "validation_error", message, {"fields": {"Last-Event-ID": [message]}})
    return int(header)


def respond(request: Request, order: EventStreamOrder | CommandStreamOrder, blocking: Blocking) -> Any:
    """Hand `order` to the front door (which gives the place back when the stream ends), or
    under plain WSGI stream `blocking` from this thread."""
    run = waits.front_door_run(request)
    if run is not None:
        run.stream = order
        return Response(status=200)  # the front door answers with the stream instead
    response = StreamingHttpResponse(blocking, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"
    return response
