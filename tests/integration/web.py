"""The web tier as `make run` starts it, and a Server-Sent Events client, for tests."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv import Proc, free_port, procs
from tests.conftest import app_env


class WebTier:
    """gunicorn with the project's conf, as `make run` starts it, on the test database."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.proc = Proc("web", procs.web(self.port), app_env(TENANT_CACHE_SECONDS="0", **env), log_path)

    def start(self) -> WebTier:
        self.proc.start().wait_healthy(self.port)
        return self

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, response
        finally:
            conn.close()

    def park(self, method: str, path: str, token: str, body: Any = None) -> socket.socket:
        """Send a request and leave it waiting (read the answer later with answer())."""
        data = json.dumps(body).encode() if body is not None else b""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
            f"Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + data
        )
        return sock

    def stop(self) -> None:
        self.proc.stop(15)


@dataclass
class Message:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class EventStream:
    """A live stream read as an EventSource would (https://html.spec.whatwg.org/#event-stream-interpretation)."""

    response: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    ended: bool = False

    @property
    def status(self) -> int:
        return self.response.status

    def header(self, name: str) -> str | None:
        return self.response.getheader(name)

    def next(self, within: float = 20.0) -> Message | None:
        """The next message (comments and `retry` are kept aside), None once the stream ended;
        TimeoutError when none came `within` seconds (keep-alives do not count)."""
        event, data, last_id = "message", [], None
        deadline = time.monotonic() + within
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message within {within}s")
            raw = self.response.readline()
            if not raw:
                self.ended = True
                return None
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if data:
                    return Message(event, "\n".join(data), last_id)
                event, last_id = "message", None
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments.append(value)
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                last_id = value
            elif name == "retry":
                self.retry = int(value)

    def take(self, count: int, within: float = 20.0) -> list[Message]:
        messages = []
        while len(messages) < count:
            message = self.next(within)
            if message is None:
                break
            messages.append(message)
        return messages

    def close(self) -> None:
        """Cut the connection (as a client that goes away mid-stream)."""
        sock = self.conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def open_stream(
    port: int, path: str, token: str | None, *, last_event_id: str | None = None, timeout: float = 30
) -> EventStream:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Token {token}"
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    conn.request("GET", path, headers=headers)
    return EventStream(conn.getresponse(), conn)
