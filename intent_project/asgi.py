"""The web tier's front door: an ASGI application that parks waiting requests on asyncio.

    gunicorn -c python:intent_project.gunicorn_conf      (uvicorn workers, see gunicorn_conf.py)

Every request runs the ordinary Django WSGI application (middleware, DRF, WhiteNoise: all
as under any WSGI server) in a thread pool this process owns: WEB_THREADS threads, reused,
so each keeps its persistent database connection as gunicorn's gthread workers did.
(Django's own ASGIHandler runs sync views in a new single-thread executor per request,
asgiref's ThreadSensitiveContext: a new thread, hence a new database connection, for
every request.)

A view that would wait (`?wait=`, `?min_position=&wait=`) and whose answer is not final
yet does not block: `intent_project.waits.Wait.until()` leaves a ParkOrder in the environ
and the view answers at once. The front door then parks the request on the event loop,
holding no thread and no database connection, until the notification for its key
arrives (the listener thread hands it over with `loop.call_soon_threadsafe`), the
deadline passes or the client goes away, and runs it again through the pool: the whole
request, so authentication and permissions are checked again on every wake (a member
removed mid-wait is refused). The answer is what the last run produced. A `POST ?wait`
is not submitted again: its wakes run the GET of the command it stored, and the answer
keeps the POST's status and headers with the command's latest body.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")

import django  # noqa: E402

# Load the apps before importing anything that reaches DRF: its APIView resolves the
# authentication classes (knox's token model) when the class is defined.
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

# Django is set up (apps loaded) before the project's modules are imported: they import
# DRF, whose settings import the authentication classes, which import models.
django_application = get_wsgi_application()

from intent_project import heap, metrics, notifications, streams, waits  # noqa: E402

log = logging.getLogger(__name__)

T = TypeVar("T")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# While the listener is connected a parked wait runs again only when its key is announced
# (notifications are sent by the committing transaction, and a listener that reconnects
# announces everything) or at its deadline: a timer would make every parked wait cost
# requests while nothing happens. While the listener is down, waits poll every
# notifications.FALLBACK_POLL_SECONDS.


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Run one request through the WSGI app, in the calling (pool) thread, to the end.

    The response is collected in memory: API answers and the admin's static files are
    small. Closing the iterable sends Django's request_finished, which gives the thread's
    database connection back (or closes it when CONN_MAX_AGE has passed)."""
    started: list[Any] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return chunks.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return Answer(
        int(status.split(" ", 1)[0]),
        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        b"".join(chunks),
    )


def build_environ(scope: Scope, body: bytes, declared_length: str | None) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP scope (PEP 3333)."""
    server = scope.get("server") or ("localhost", 80)
    root, path = scope.get("root_path", ""), scope["path"]
    if root and path.startswith(root):  # ASGI servers may include root_path in path
        path = path[len(root) :]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        # PEP 3333: native strings holding the bytes, i.e. UTF-8 read as latin-1.
        "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": declared_length if declared_length is not None else str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1")
        if "_" in name:
            # "X_Request_ID" and "X-Request-ID" would both become HTTP_X_REQUEST_ID: one
            # could spoof the other (gunicorn drops such headers too).
            continue
        value = raw_value.decode("latin-1")
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        if name.lower() == "content-length":
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def recheck_environ(original: dict[str, Any], path: str) -> dict[str, Any]:
    """A GET of `path` (with its query) carrying the original request's credentials."""
    parts = urlsplit(path)
    environ = dict(original)
    environ.update(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
        }
    )
    environ.pop("CONTENT_TYPE", None)
    return environ


def _error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    return Answer(
        status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body
    )


class FrontDoor:
    """The ASGI application (see the module docstring)."""

    def __init__(self, app: WsgiApp, threads: int) -> None:
        self.app = app
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._rerun_slots: asyncio.Semaphore | None = None

    @property
    def rerun_slots(self) -> asyncio.Semaphore:
        """Runs of parked waits in the pool at once: at most half its threads, so a burst of
        wakes (a projection that hundreds wait on moves, a shared deadline, the listener
        reconnecting) queues behind itself and never fills the pool ordinary requests need."""
        if self._rerun_slots is None:
            self._rerun_slots = asyncio.Semaphore(max(1, self.threads // 2))
        return self._rerun_slots

    @property
    def pool(self) -> ThreadPoolExecutor:
        # Created on first use, so it is this process's own (gunicorn forks the workers).
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="intent-web")
        return self._pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Listen before the first request can wait, not when it does.
                notifications.ensure_listener()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _run(self, environ: dict[str, Any], run: waits.FrontDoorRun) -> tuple[Answer, int]:
        """One run through the pool; also the notification number from before it."""
        environ = dict(environ, **{waits.ENVIRON_KEY: run})
        environ["wsgi.input"].seek(0)
        heard = notifications.sequence()
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(self.pool, call_wsgi, self.app, environ)
        except Exception:
            log.exception("the WSGI application failed outside Django's own error handling")
            answer = _error(500, "server_error", "The server failed; the error was logged.")
        return answer, heard

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, declared = await _read_body(receive)
        environ = build_environ(scope, body, declared)
        run = waits.FrontDoorRun()
        answer, heard = await self._run(environ, run)
        if run.stream is not None:
            await self._stream(environ, answer, run.stream, receive, send)
            return
        if run.park is None:
            await _send(send, answer)
            return
        final = await self._park(environ, answer, run.park, heard, receive)
        if final is not None:  # else the client went away
            await _send(send, final)

    async def _park(
        self,
        environ: dict[str, Any],
        first: Answer,
        order: waits.ParkOrder,
        heard: int,
        receive: Receive,
    ) -> Answer | None:
        """Wait for `order`, run again, until final; None if the client went away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + order.seconds
        slot = order.slot
        again = environ if order.recheck is None else recheck_environ(environ, order.recheck.path)
        request_id = first.header(b"x-request-id")
        if request_id is not None:  # every run logs and answers under the first one's id
            again["HTTP_X_REQUEST_ID"] = request_id.decode("latin-1")
        gone = asyncio.ensure_future(_disconnected(receive))
        last = first
        try:
            with notifications.subscribe_async(order.key) as subscription:
                park: waits.ParkOrder | None = order
                while park is not None:
                    if not notifications.heard_since(heard, order.key):
                        remaining = deadline - loop.time()
                        if remaining > 0:
                            if not notifications.listening():
                                remaining = min(remaining, notifications.FALLBACK_POLL_SECONDS)
                            if park.poll is not None:
                                remaining = min(remaining, park.poll)
                            woken = asyncio.ensure_future(subscription.wait(remaining))
                            await asyncio.wait({woken, gone}, return_when=asyncio.FIRST_COMPLETED)
                            woken.cancel()
                            if gone.done():
                                return None
                    async with self.rerun_slots:
                        run = waits.FrontDoorRun(final=loop.time() >= deadline, slot=slot)
                        last, heard = await self._run(again, run)
                    park = run.park
                    if park is not None and park.key != order.key:
                        break  # cannot happen for one request; answer rather than wait wrongly
        finally:
            gone.cancel()
            await loop.run_in_executor(None, waits.release, slot)
        if order.recheck is not None and last.status == 200:
            # POST ?wait: the POST's status and headers, the command as it is now.
            headers = [(k, v) for k, v in first.headers if k not in (b"content-length", b"content-type")]
            headers += [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in order.recheck.headers.items()
            ]
            headers += [(k, v) for k, v in last.headers if k == b"content-type"]
            headers.append((b"content-length", str(len(last.body)).encode()))
            return Answer(order.recheck.status, headers, last.body)
        return last

    # ------------------------------------------------------------------ live streams

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the pool, sharing the parked waits' half of its threads."""
        loop = asyncio.get_running_loop()
        async with self.rerun_slots:
            return await loop.run_in_executor(self.pool, fn, *args)

    async def again(
        self, environ: dict[str, Any], slot: waits.WaitSlot, path: str | None = None
    ) -> tuple[int, bytes, waits.FrontDoorRun]:
        again = environ
        if path is not None:  # the resource's own JSON, whatever the stream's client accepts
            again = dict(recheck_environ(environ, path), HTTP_ACCEPT="application/json")
        run = waits.FrontDoorRun(slot=slot)
        async with self.rerun_slots:
            answer, _ = await self._run(again, run)
        return answer.status, answer.body, run

    async def _stream(
        self, environ: dict[str, Any], first: Answer, order: Any, receive: Receive, send: Send
    ) -> None:
        """Serve a stream a view ordered (intent_project/streams.py), until it ends or the
        client goes away; its place is given back either way."""
        if first.status != 200:  # refused after the view (a middleware): no stream, no place
            await loop_call(waits.release, order.slot)
            await _send(send, first)
            return
        request_id = first.header(b"x-request-id")
        if request_id is not None:  # every run logs under the first one's id
            environ["HTTP_X_REQUEST_ID"] = request_id.decode("latin-1")
        serve = streams.serve_events if isinstance(order, streams.EventStreamOrder) else streams.serve_command
        gone = asyncio.ensure_future(_disconnected(receive))
        kind = "events" if serve is streams.serve_events else "command"
        metrics.STREAMS_OPEN.labels(kind).inc()
        try:
            await serve(self, environ, order, first.headers, send, gone)
        except Exception:
            # The database went away mid-stream, say: end it; the client resumes from its
            # last id when it reconnects, missing nothing.
            log.warning("a live stream failed; ending it", exc_info=True)
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            metrics.STREAMS_OPEN.labels(kind).dec()
            gone.cancel()
            await loop_call(waits.release, order.slot)


async def loop_call(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in the loop's default executor (Redis calls that must not block the loop)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _read_body(receive: Receive) -> tuple[bytes, str | None]:
    """The request body, read up to one byte past DATA_UPLOAD_MAX_MEMORY_SIZE (Django
    refuses a larger one with 413 from the Content-Length; the rest is never buffered)."""
    limit = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**31) + 1
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size < limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    return body, (str(size) if more else None)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})


application = FrontDoor(django_application, settings.WEB_THREADS)
heap.settle()  # what this process loaded to serve stays out of the collector's walks
