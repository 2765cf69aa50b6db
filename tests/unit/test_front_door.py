"""The front door (intent_project/asgi.py) with a stand-in WSGI app: how it builds the
environ, parks, runs again, combines a POST ?wait's answer, and lets go of a client that
left. The real app behind it: tests/integration/test_fair_waiting.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from intent_project import asgi, notifications, waits
from intent_project.waits import FrontDoorRun, ParkOrder, Recheck, WaitSlot

SLOT = WaitSlot("7", "slot-1")
KEY = "t_acme:c1"


@pytest.fixture(autouse=True)
def no_listener(monkeypatch):
    """No database here: no listener thread; waits would poll (and are woken by hand)."""
    monkeypatch.setattr(notifications, "_ensure_listener", lambda: None)
    released: list[WaitSlot] = []
    monkeypatch.setattr(waits, "release", released.append)
    return released


class App:
    """A WSGI app that parks until `final_after` runs, recording each run's environ."""

    def __init__(
        self, final_after: int = 1, recheck: Recheck | None = None, recheck_status: str = "200 OK"
    ) -> None:
        self.final_after = final_after
        self.recheck = recheck
        self.recheck_status = recheck_status
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environs.append(environ)
        run: FrontDoorRun = environ[waits.ENVIRON_KEY]
        runs = len(self.environs)
        if runs <= self.final_after and not run.final:
            run.park = ParkOrder(KEY, seconds=30, slot=run.slot or SLOT, recheck=self.recheck)
            start_response("202 Accepted", [("Content-Type", "application/json"), ("X-Request-ID", "rid-1")])
            return [b'{"parked": true}']
        status = self.recheck_status if runs > 1 and self.recheck else "200 OK"
        body = json.dumps({"run": runs, "method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"]})
        start_response(status, [("Content-Type", "application/json"), ("X-Request-ID", "rid-x")])
        return [body.encode()]


async def call(
    app: Any,
    method: str = "GET",
    path: str = "/t/acme/api/commands/c1/",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    wake: bool = True,
    leave: bool = False,
) -> list[dict[str, Any]]:
    door = asgi.FrontDoor(app, threads=2)
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"wait=30",
        "headers": headers or [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
        "scheme": "http",
        "http_version": "1.1",
    }
    task = asyncio.ensure_future(door(scope, receive, send))
    await asyncio.sleep(0.2)  # the first run is over: parked
    if leave:
        gone.set()
    elif wake:
        notifications._wake(KEY)
    await asyncio.wait_for(task, 10)
    return sent


def body_of(sent: list[dict[str, Any]]) -> Any:
    return json.loads(sent[1]["body"])


def test_a_parked_request_runs_again_when_its_key_is_announced_and_answers_the_last_run(no_listener):
    app = App(final_after=1)

    sent = asyncio.run(call(app))

    assert sent[0]["status"] == 200
    assert body_of(sent) == {"run": 2, "method": "GET", "path": "/t/acme/api/commands/c1/"}
    second: FrontDoorRun = app.environs[1][waits.ENVIRON_KEY]
    assert second.slot == SLOT  # the place is not taken twice ...
    assert app.environs[1]["HTTP_X_REQUEST_ID"] == "rid-1"  # ... and the request keeps its id
    assert no_listener == [SLOT]  # ... and is given back at the end


def test_a_post_wait_runs_its_recheck_get_and_keeps_its_own_status_and_headers(no_listener):
    app = App(recheck=Recheck("/t/acme/api/commands/c1/?wait=30", 200, {"Idempotent-Replayed": "true"}))

    sent = asyncio.run(call(app, "POST", "/t/acme/api/commands/", body=b'{"type": "x"}'))

    assert app.environs[1]["REQUEST_METHOD"] == "GET"  # never submitted again
    assert app.environs[1]["QUERY_STRING"] == "wait=30"
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 200
    assert headers[b"idempotent-replayed"] == b"true"
    assert headers[b"content-length"] == str(len(sent[1]["body"])).encode()
    assert body_of(sent)["method"] == "GET"


def test_a_post_wait_whose_recheck_is_refused_answers_the_refusal(no_listener):
    app = App(recheck=Recheck("/t/acme/api/commands/c1/", 202), recheck_status="403 Forbidden")

    sent = asyncio.run(call(app, "POST", "/t/acme/api/commands/"))

    assert sent[0]["status"] == 403


def test_a_client_that_leaves_while_parked_gets_nothing_and_frees_its_place(no_listener):
    app = App(final_after=99)

    sent = asyncio.run(call(app, leave=True))

    assert sent == []
    assert len(app.environs) == 1
    assert no_listener == [SLOT]


def test_the_environ_follows_pep_3333_and_drops_headers_with_underscores():
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/t/acme/ä/",
        "query_string": b"a=1&b=%C3%A4",
        "headers": [
            (b"x-request-id", b"mine"),
            (b"x_request_id", b"spoofed"),
            (b"content-type", b"application/json"),
            (b"accept", b"a"),
            (b"accept", b"b"),
        ],
        "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.1", 1234),
    }

    environ = asgi.build_environ(scope, b"{}", None)

    assert environ["PATH_INFO"] == "/t/acme/ä/".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "a=1&b=%C3%A4"
    assert environ["HTTP_X_REQUEST_ID"] == "mine"
    assert environ["HTTP_ACCEPT"] == "a,b"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "2"
    assert environ["REMOTE_ADDR"] == "10.0.0.1"


def test_a_body_larger_than_the_limit_is_not_buffered_and_declared_too_large(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    chunks = [{"type": "http.request", "body": b"x" * 8, "more_body": True} for _ in range(100)]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    body, declared = asyncio.run(asgi._read_body(receive))

    assert len(body) <= 16  # stopped reading just past the limit
    assert declared is not None and int(declared) > 10  # Django answers 413 from it
    assert len(chunks) == 98
