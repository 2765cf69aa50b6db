"""Live streams: 500 subscribers while commands flow, against other requests' latency.

Processes: the web server as `make run` runs it (the front door on uvicorn workers), a
Celery worker, PostgreSQL and Redis.

1. idle: another tenant's reader (CLIENTS keep-alive threads) GETs a read model of its
   tenant; p50/p99.
2. streaming: SUBSCRIBERS clients (one asyncio loop in this process, raw sockets) open
   `GET /t/<A>/api/events/stream/?after=<head>` as a developer of tenant A; once all are
   open, commands are sent to A at RATE per second for the phase while the same reads as
   in 1 run again. Targets: every subscriber received every event of A appended in the
   phase exactly once and in position order (checked against the events list), and the
   reader's p99 within 2x its idle p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import multiprocessing
import threading
import time
import uuid
from typing import Any

from bench.common import Context, Result, Target, latency_summary
from bench.endtoend import create_client_user
from bench.procs import Processes, free_port
from bench.waits import CLIENTS, _reader_latencies

SUBSCRIBERS = 500
RATE = 20  # commands per second sent to the streamed tenant


class Subscribers:
    """SUBSCRIBERS event streams read on one event loop in a process of their own (a client
    process, as subscribers would be: its parsing must not take this process's GIL from the
    reader threads being measured)."""

    def __init__(self, port: int, token: str, path: str, count: int) -> None:
        self.port, self.token, self.path, self.count = port, token, path, count
        context = multiprocessing.get_context("fork")
        self.opened = context.Value("i", 0)
        self.failed = context.Value("i", 0)
        self.stopping = context.Event()
        self.results, child_end = context.Pipe(duplex=False)
        self.process = context.Process(target=self._main, args=(child_end,), daemon=True)
        self.received: list[list[int]] = []

    def start(self) -> None:
        self.process.start()

    def snapshot(self) -> list[list[int]]:
        """Ask the child for what each subscriber received so far."""
        self.stopping.set()
        self.received = self.results.recv()
        self.process.join(30)
        return self.received

    def _main(self, pipe: Any) -> None:
        received: list[list[int]] = [[] for _ in range(self.count)]

        async def read(index: int) -> None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=2**20)
            except OSError:
                with self.failed.get_lock():
                    self.failed.value += 1
                return
            writer.write(
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {self.token}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                with self.failed.get_lock():
                    self.failed.value += 1
                writer.close()
                return
            with self.opened.get_lock():
                self.opened.value += 1
            mine = received[index]
            with contextlib.suppress(OSError):
                # Frames arrive inside HTTP chunks; their `id:` lines count (one per event).
                while line := await reader.readline():
                    if line.startswith(b"id: "):
                        mine.append(int(line[4:]))

        async def main() -> None:
            tasks = [asyncio.ensure_future(read(index)) for index in range(self.count)]
            while not self.stopping.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())
        pipe.send(received)


def _send_commands(port: int, token: str, tenant: str, rate: float, seconds: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        body = {"type": "executeTest", "payload": {"testId": str(uuid.uuid4()), "testName": "streamed"}}
        conn.request("POST", f"/t/{tenant}/api/commands/", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        response.read()
        sent += response.status == 202
        pause = start + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    conn.close()
    return sent


def _listed(port: int, token: str, tenant: str, after: int) -> list[int]:
    positions: list[int] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        conn.request(
            "GET",
            f"/t/{tenant}/api/events/?after={after}&limit=1000",
            headers={"Authorization": f"Token {token}"},
        )
        page = json.loads(conn.getresponse().read())
        positions += [event["position"] for event in page["results"]]
        if not page["next"]:
            conn.close()
            return positions
        after = page["last_position"]


def run_streams(ctx: Context) -> list[Result]:
    from django_tenants.utils import schema_context

    from events_app.models import Event

    streamed = ctx.fresh_tenant("streams")
    other = ctx.fresh_tenant("reader")
    token = create_client_user(ctx, streamed, "subscriber", "developer")
    reader_token = create_client_user(ctx, other, "reader", "viewer")
    subscribers = ctx.n(SUBSCRIBERS, minimum=50)
    procs = Processes("streams")
    ctx.on_cleanup(lambda: procs.stop(keep_logs=ctx.keep))
    port = free_port()
    procs.web(port, STREAMS_PER_USER=str(subscribers + 10)).wait_healthy(port)
    procs.worker().wait_for("ready.", 60)
    read_path = f"/t/{other.slug}/api/read-models/system_status/"
    requests = ctx.n(800, minimum=80)

    _reader_latencies(port, reader_token, read_path, 100)  # warm-up
    ctx.log(f"streams: idle readers of another tenant ({CLIENTS} clients)")
    idle, _ = _reader_latencies(port, reader_token, read_path, requests)

    seconds = ctx.seconds(20, minimum=5)
    ctx.log(f"streams: the same reads while commands arrive at {RATE}/s, no stream open")
    sender = threading.Thread(target=lambda: _send_commands(port, token, streamed.slug, RATE, seconds))
    sender.start()
    flowing, _ = _reader_latencies(port, reader_token, read_path, requests)
    sender.join()

    with schema_context(streamed.schema_name):
        start = max(Event.objects.values_list("position", flat=True), default=0)
    clients = Subscribers(port, token, f"/t/{streamed.slug}/api/events/stream/?after={start}", subscribers)
    ctx.log(f"streams: opening {subscribers} subscribers")
    clients.start()
    deadline = time.monotonic() + 60
    while clients.opened.value + clients.failed.value < subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    opened = clients.opened.value
    ctx.log(f"streams: {opened} open; commands at {RATE}/s while the readers run again")
    sender = threading.Thread(target=lambda: _send_commands(port, token, streamed.slug, RATE, seconds))
    sender.start()
    busy, busy_statuses = _reader_latencies(port, reader_token, read_path, requests)
    sender.join()
    # Until the worker has handled every command (then the streams have a second to catch up).
    expected, previous = _listed(port, token, streamed.slug, start), None
    for _ in range(120):
        if expected == previous:
            break
        time.sleep(1.0)
        previous, expected = expected, _listed(port, token, streamed.slug, start)
    time.sleep(2.0)
    received = clients.snapshot()
    complete = sum(1 for got in received if got == expected)
    idle_summary, busy_summary = latency_summary(idle), latency_summary(busy)
    flowing_summary = latency_summary(flowing)
    shape = {"subscribers": subscribers, "opened": opened, "refused": clients.failed.value, "rate": RATE}
    return [
        Result(
            name=f"streams_{subscribers}_subscribers_each_event_once_in_order",
            ours=float(complete),
            baseline=float(subscribers),
            baseline_name="subscribers",
            unit="subscribers",
            target=Target("every subscriber", "ratio", ">=", 1.0),
            extra={"events": len(expected), **shape},
            note=f"{complete} of {subscribers} subscribers received all {len(expected)} events appended "
            "in the phase, once each, in position order",
        ),
        Result(
            name=f"streams_read_p99_with_{subscribers}_subscribers_vs_idle",
            ours=busy_summary.get("p99_ms"),
            baseline=idle_summary.get("p99_ms"),
            baseline_name="read p99 with no stream and no commands, same run",
            unit="ms",
            target=Target("p99 ≤ 2 × idle p99", "ratio", "<=", 2.0),
            extra={"idle": idle_summary, "streaming": busy_summary, "statuses": busy_statuses, **shape},
            note=f"another tenant's GET {read_path}: {CLIENTS} keep-alive clients, while {subscribers} "
            f"subscribers stream and commands arrive at {RATE}/s",
        ),
        Result(
            name=f"streams_read_p99_with_{subscribers}_subscribers_vs_commands_alone",
            ours=busy_summary.get("p99_ms"),
            baseline=flowing_summary.get("p99_ms"),
            baseline_name=f"read p99 with commands at {RATE}/s and no stream, same run",
            unit="ms",
            target=Target("p99 ≤ 2 × without streams", "ratio", "<=", 2.0),
            extra={"commands_alone": flowing_summary, "streaming": busy_summary, **shape},
            note="what the subscribers add: the same command flow (worker included) with and without them",
        ),
    ]
