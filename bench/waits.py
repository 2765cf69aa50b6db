"""Fair waiting: hundreds of parked waits must not slow anyone else down.

Processes: the web server as `make run` runs it (gunicorn with intent_project/gunicorn_conf.py:
the front door on uvicorn workers), PostgreSQL and Redis; no Celery worker (nothing the
parked waits wait for ever happens, so they stay parked for the whole measurement).

1. idle: another tenant's reader (CLIENTS keep-alive client threads) GETs a read model of
   its own tenant, and /health/, for a fixed number of requests; p50/p99.
2. parked: PARKED requests `GET /t/<A>/api/read-models/system_status/?min_position=<far
   ahead>&wait=30` from one user of tenant A are sent on raw sockets and left open (the
   web server's WAITS_PER_USER is raised so one user may park them all); once every one
   is parked (its slot is in Redis), the same reads as in 1 run again. Target: that
   tenant's p99 (and /health/'s) within 2x its idle p99.
3. the cap: a second web server with the default WAITS_PER_USER parks that many waits of
   one user, then sends more: each is refused with 429 `too_many_waits`; how fast.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import Context, Result, Target, latency_summary
from bench.endtoend import create_client_user
from bench.procs import Processes, free_port

PARKED = 300
CLIENTS = 4
ROUNDS = 3
SETTLE_SECONDS = 1.0
FAR_AHEAD = 10**12


def _reader_latencies(
    port: int, token: str | None, path: str, requests: int
) -> tuple[list[float], dict[int, int]]:
    """`requests` GETs of `path` from CLIENTS keep-alive connections; latencies and statuses."""
    per_client = max(1, requests // CLIENTS)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine: list[float] = []
        seen: dict[int, int] = {}
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status = 0
            mine.append(time.perf_counter() - start)
            seen[status] = seen.get(status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    return latencies, statuses


def _park(port: int, token: str, path: str, count: int) -> list[socket.socket]:
    """Send `count` waiting GETs on their own connections and leave them unanswered."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)
        sockets.append(sock)
    return sockets


def _answered(sockets: list[socket.socket]) -> int:
    """How many of the parked requests already got (the start of) an answer."""
    count = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            if sock.recv(1, socket.MSG_PEEK):
                count += 1
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
    return count


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _wait_parked(owner: str, count: int, timeout: float) -> float:
    """Seconds until `owner` holds `count` wait slots (each parked wait holds one)."""
    from intent_project import waits

    start = time.monotonic()
    while waits.in_progress(owner) < count:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"only {waits.in_progress(owner)} of {count} waits parked after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def _measure_readers(port: int, token: str, read_path: str, requests: int, into: dict[str, Any]) -> None:
    for what, path, auth in (("read", read_path, token), ("health", "/health/", None)):
        latencies, statuses = _reader_latencies(port, auth, path, requests)
        into.setdefault(what, []).extend(latencies)
        seen = into.setdefault(f"{what}_statuses", {})
        for status, count in statuses.items():
            seen[status] = seen.get(status, 0) + count


def run_waits(ctx: Context) -> list[Result]:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from intent_project import waits

    waiting_tenant = ctx.fresh_tenant("waits")
    other_tenant = ctx.fresh_tenant("reader")
    # As in the issue: the waits come from one viewer, the reads from another tenant.
    waiter_token = create_client_user(ctx, waiting_tenant, "waiter", "viewer")
    reader_token = create_client_user(ctx, other_tenant, "reader", "viewer")
    waiter = str(get_user_model().objects.get(username=f"bx-waiter-{ctx.run_id}").pk)
    procs = Processes("waits")
    ctx.on_cleanup(lambda: procs.stop(keep_logs=ctx.keep))

    parked = ctx.n(PARKED, minimum=30)
    port = free_port()
    web = procs.web(port, WAITS_PER_USER=str(parked + 10))
    web.wait_healthy(port)
    read_path = f"/t/{other_tenant.slug}/api/read-models/system_status/"
    wait_path = f"/t/{waiting_tenant.slug}/api/read-models/system_status/?min_position={FAR_AHEAD}&wait=30"

    _reader_latencies(port, reader_token, read_path, 100)  # warm-up: imports, connections
    _reader_latencies(port, None, "/health/", 100)
    # Idle and parked phases alternate, so load from elsewhere on the machine falls on both.
    per_phase = ctx.n(800, minimum=80) // ROUNDS
    idle: dict[str, Any] = {}
    busy: dict[str, Any] = {}
    park_seconds: list[float] = []
    still_parked = parked
    for round_no in range(1, ROUNDS + 1):
        ctx.log(f"waits: round {round_no}/{ROUNDS}: idle readers of another tenant ({CLIENTS} clients)")
        _measure_readers(port, reader_token, read_path, per_phase, idle)
        ctx.log(f"waits: round {round_no}/{ROUNDS}: parking {parked} waits of one user (wait=30)")
        sockets = _park(port, waiter_token, wait_path, parked)
        try:
            park_seconds.append(_wait_parked(waiter, parked, timeout=25))
            # A wait holds its place from early in its first run: let the last first runs
            # finish, so the figure is about waits that are parked, not still arriving.
            time.sleep(SETTLE_SECONDS)
            _measure_readers(port, reader_token, read_path, per_phase, busy)
            still_parked = min(still_parked, parked - _answered(sockets))
        finally:
            _close(sockets)  # the front door sees the clients go and gives their places back
        deadline = time.monotonic() + 30
        while waits.in_progress(waiter) and time.monotonic() < deadline:
            time.sleep(0.05)

    cap = _cap(ctx, procs, waiter_token, waiter, wait_path, int(settings.WAITS_PER_USER))
    shape = {"web": _web_shape(), "parked_waits": parked, "reader_clients": CLIENTS}
    results = []
    for what, label in (("read", f"another tenant's GET {read_path}"), ("health", "GET /health/")):
        idle_summary, busy_summary = latency_summary(idle[what]), latency_summary(busy[what])
        results.append(
            Result(
                name=f"waits_{what}_p99_with_{parked}_parked_vs_idle",
                ours=busy_summary.get("p99_ms"),
                baseline=idle_summary.get("p99_ms"),
                baseline_name=f"{what} p99 with nothing parked, same run",
                unit="ms",
                target=Target("p99 ≤ 2 × idle p99", "ratio", "<=", 2.0),
                extra={
                    "idle": idle_summary,
                    "parked": busy_summary,
                    "idle_statuses": idle[f"{what}_statuses"],
                    "parked_statuses": busy[f"{what}_statuses"],
                    "still_parked_after": still_parked,
                    "seconds_to_park": [round(x, 2) for x in park_seconds],
                    **shape,
                },
                note=f"{label}: {CLIENTS} keep-alive clients, {ROUNDS} rounds of idle then parked; at least "
                f"{still_parked} of {parked} waits still parked (unanswered) when each round's readers finished",
            )
        )
    results.append(cap)
    return results


def _cap(ctx: Context, procs: Processes, token: str, owner: str, wait_path: str, limit: int) -> Result:
    """With the default WAITS_PER_USER: park `limit` waits, then time the refusals."""
    port = free_port()
    web = procs.web(port)
    web.wait_healthy(port)
    extra_requests = ctx.n(100, minimum=20)
    ctx.log(f"waits: default cap {limit}: parking {limit}, then {extra_requests} more")
    sockets = _park(port, token, wait_path, limit)
    try:
        _wait_parked(owner, limit, timeout=25)
        latencies, statuses = _reader_latencies(port, token, wait_path, extra_requests)
        refused_body = _one_refusal(port, token, wait_path)
    finally:
        _close(sockets)
    summary = latency_summary(latencies)
    return Result(
        name="waits_refused_beyond_the_cap",
        ours=summary.get("p99_ms"),
        unit="ms",
        target=Target("refused at once (p99 < 100 ms)", "ours", "<", 100),
        extra={"limit": limit, "refusals": summary, "statuses": statuses, "example": refused_body},
        note=f"WAITS_PER_USER={limit} (the default): {limit} parked, then {len(latencies)} more "
        f"from the same user: statuses {statuses}",
    )


def _one_refusal(port: int, token: str, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Token {token}", "Accept": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read() or b"null")
    conn.close()
    return {"status": response.status, "retry_after": response.getheader("Retry-After"), "body": body}


def _web_shape() -> str:
    from bench.endtoend import web_shape

    return web_shape()
