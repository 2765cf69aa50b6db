"""End to end over HTTP: POST a command, then wait for `processed` (GET ?wait=), from
concurrent clients against a real web server and a real worker.

Processes: the web server as `make run` runs it (gunicorn, intent_project/gunicorn_conf.py:
WEB_WORKERS processes, 2 by default, each an event loop with a pool of WEB_THREADS threads), one Celery worker with
`--concurrency 2`, PostgreSQL and Redis; the client threads run in the bench process.
All share the machine's cores.

1. sustained: CLIENTS closed-loop client threads (each: POST, then GET ?wait=3 until
   final) for a warm-up and then a measured window; figure = commands that reached
   `processed` within the window / window.
2. fixed rate: an open-loop scheduler offers 200 commands/s (one every 5 ms) to a pool of
   client threads; latency runs from the scheduled send time (so a client that falls
   behind shows up in the figure) to the GET that returns `processed`.
3. the ceiling (issue 18): a second web server, the same gunicorn settings, serving a bare
   DRF view (bench/ceiling: token authentication, a small serializer, one INSERT), loaded
   by the same CLIENTS threads right before and right after the sustained `POST ?wait`
   phase; that phase's ratio is taken against the mean of the two.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from bench.common import Context, Result, Target, latency_summary, stream_ids, zipf_indices
from bench.pipeline import server_latencies, status_counts
from bench.procs import CpuMeter, Processes, free_port

CLIENTS = 32
RATE = 200.0
RATE_POOL = 48  # client threads for the fixed-rate phase (each holds a server thread and connection)


class Client:
    """One keep-alive connection per thread; never raises for HTTP errors."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.local = threading.local()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                conn.request(method, path, body=data, headers=self.headers)
                resp = conn.getresponse()
                raw = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self.local.conn = None
                return resp.status, json.loads(raw) if raw else None
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
                self.local.conn = None
                if attempt:
                    return 0, None
        return 0, None


class Driver:
    """POSTs logMessage commands and waits for `processed`: with a second request
    (`GET ?wait=3`, the default), or in the POST itself (`one_request`: `POST ?wait=3`)."""

    def __init__(self, port: int, token: str, slug: str, seed: int, one_request: bool = False) -> None:
        self.client = Client(port, token)
        self.base = f"/t/{slug}/api/commands/"
        self.post_path = self.base + ("?wait=3" if one_request else "")
        self.systems = stream_ids(seed)
        self.choices = zipf_indices(seed)
        self.lock = threading.Lock()
        self.ids: list[uuid.UUID] = []
        self.errors: dict[str, int] = {}
        self.post_seconds: list[float] = []  # the POST alone (the web server's share)

    def _error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def command(self, stop: threading.Event | None = None) -> tuple[bool, float]:
        """POST one logMessage, wait until final; (processed?, seconds from POST).

        Gives up (False) once `stop` is set and the current wait returns."""
        with self.lock:
            system = self.systems[next(self.choices)]
        command_id = uuid.uuid4()
        body = {
            "id": str(command_id),
            "type": "logMessage",
            "payload": {"message": "bench over http", "systemId": str(system)},
        }
        start = time.perf_counter()
        status, data = self.client.request("POST", self.post_path, body)
        posted = time.perf_counter() - start
        with self.lock:
            self.post_seconds.append(posted)
        if status != 202:
            self._error(f"POST {status}")
            return False, time.perf_counter() - start
        with self.lock:
            self.ids.append(command_id)
        while True:
            if data and data.get("status") in ("processed", "failed"):
                break
            status, data = self.client.request("GET", f"{self.base}{command_id}/?wait=3")
            if status != 200:
                self._error(f"GET {status}")
                return False, time.perf_counter() - start
            if stop is not None and stop.is_set() and data.get("status") not in ("processed", "failed"):
                return False, time.perf_counter() - start
        if data.get("status") == "failed":
            self._error("failed")
            return False, time.perf_counter() - start
        return True, time.perf_counter() - start


class BareDriver:
    """POSTs a command-shaped body to the bare DRF view (bench/ceiling): the ceiling of the
    web framework under the same server, for the same client."""

    PATH = "/bench/ceiling/"

    def __init__(self, port: int, token: str) -> None:
        self.client = Client(port, token)
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()

    def command(self, stop: threading.Event | None = None) -> tuple[bool, float]:
        body = {"id": str(uuid.uuid4()), "type": "logMessage", "payload": {"message": "bench over http"}}
        start = time.perf_counter()
        status, _ = self.client.request("POST", self.PATH, body)
        if status != 202:
            with self.lock:
                self.errors[f"POST {status}"] = self.errors.get(f"POST {status}", 0) + 1
        return status == 202, time.perf_counter() - start


def sustained(
    driver: Driver | BareDriver, clients: int, warmup: float, window: float, meter: CpuMeter | None = None
) -> dict[str, Any]:
    """Closed loop: `clients` threads, each sending its next command once the last one is
    final. With a meter, also the CPU each part of the system spent per command."""
    stop = threading.Event()
    done: list[tuple[float, float]] = []  # (completion time, latency)
    lock = threading.Lock()

    def loop() -> None:
        while not stop.is_set():
            ok, latency = driver.command(stop)
            if ok:
                with lock:
                    done.append((time.perf_counter(), latency))

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    if meter is not None:
        meter.start()
    t0 = time.perf_counter()
    time.sleep(window)
    t1 = time.perf_counter()
    if meter is not None:
        meter.stop()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    inside = [lat for at, lat in done if t0 <= at < t1]
    cpu = meter.per(len(inside)) if meter is not None else {}
    return {"rate": len(inside) / (t1 - t0), "latencies": inside, "completed": len(inside), "cpu": cpu}


def fixed_rate(driver: Driver, rate: float, seconds: float, grace: float) -> dict[str, Any]:
    """Offer `rate` commands/s for `seconds`; wait at most `grace` more for the stragglers.

    A command still open at the cut-off counts with its latency so far (a lower bound), so
    a system that cannot keep up shows it in the percentiles instead of hiding it."""
    count = max(1, int(rate * seconds))
    lock = threading.Lock()
    stop = threading.Event()
    from_schedule: list[float] = []
    from_post: list[float] = []
    late = [0]
    open_since: dict[int, float] = {}

    def task(index: int, scheduled: float) -> None:
        if stop.is_set():
            return
        began = time.perf_counter()
        with lock:
            open_since[index] = scheduled
            if began - scheduled > 0.005:
                late[0] += 1
        ok, latency = driver.command(stop)
        end = time.perf_counter()
        with lock:
            if ok:
                open_since.pop(index, None)
                from_schedule.append(end - scheduled)
                from_post.append(latency)

    pool = ThreadPoolExecutor(max_workers=RATE_POOL)
    t0 = time.perf_counter() + 0.05
    futures = []
    for i in range(count):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(task, i, scheduled))
    offered_seconds = time.perf_counter() - t0
    wait(futures, timeout=grace)
    cutoff = time.perf_counter()
    stop.set()
    pool.shutdown(wait=True, cancel_futures=True)
    with lock:
        never_started = count - len(from_schedule) - len(open_since)
        unfinished = [cutoff - scheduled for scheduled in open_since.values()]
        unfinished += [cutoff - (t0 + i / rate) for i in range(count - never_started, count)]
    return {
        "offered": count,
        "offered_rate": count / offered_seconds,
        "completed": len(from_schedule),
        "unfinished_at_cutoff": len(unfinished),
        "from_schedule": from_schedule + unfinished,
        "from_post": from_post,
        "started_late": late[0],
    }


def create_client_user(ctx: Context, tenant: Any, name: str = "bench", role: str = "admin") -> str:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from intent_project.tenants.services import set_membership

    user = get_user_model().objects.create_user(f"bx-{name}-{ctx.run_id}", "", None)
    set_membership(user, tenant, role)

    def delete_user() -> None:
        user.delete()

    ctx.on_cleanup(delete_user)
    _, token = AuthToken.objects.create(user=user)
    return str(token)


def run_http(ctx: Context) -> list[Result]:
    tenant = ctx.fresh_tenant("http")
    token = create_client_user(ctx, tenant)
    procs = Processes("http")
    ctx.on_cleanup(lambda: procs.stop(keep_logs=ctx.keep))
    port = free_port()
    # One user drives up to RATE_POOL concurrent waits here, like a service account would:
    # above the default cap for one user (WAITS_PER_USER, 20).
    web = procs.web(port, WAITS_PER_USER=str(RATE_POOL + CLIENTS))
    worker = procs.worker("worker", concurrency=2)
    # The ceiling: the same server and settings serving a bare DRF view (bench/ceiling).
    ceiling_port = free_port()
    ceiling_web = procs.web(ceiling_port, DJANGO_SETTINGS_MODULE="bench.ceiling.settings")
    web.wait_healthy(port)
    ceiling_web.wait_healthy(ceiling_port)
    worker.wait_for("ready.", 60)
    common = {
        "web": web_shape(),
        "worker": "1 Celery worker process, --concurrency 2 (prefork)",
    }
    ceiling = Ceiling(ctx, BareDriver(ceiling_port, token), CpuMeter({"web": ceiling_web}))
    meter = CpuMeter({"web": web, "worker": worker})
    results = []
    for suffix, one_request, how in (
        ("", False, "POST, then GET ?wait=3 until processed"),
        ("_post_wait", True, "POST ?wait=3 (submit and wait in one request)"),
    ):
        driver = Driver(port, token, tenant.slug, seed=61, one_request=one_request)
        results += _measure(
            ctx, tenant.schema_name, driver, suffix, how, common, meter, ceiling if one_request else None
        )
    results.append(ceiling.result(common))
    return results


class Ceiling:
    """The bare view's sustained POST rate, measured right before and right after one of
    our sustained phases (interleaved, so both meet the same machine)."""

    def __init__(self, ctx: Context, driver: BareDriver, meter: CpuMeter) -> None:
        from django.db import connection

        from bench.ceiling.views import CREATE_TABLE, DROP_TABLE

        self.ctx = ctx
        self.driver = driver
        self.meter = meter
        self.cpu: list[dict[str, Any]] = []
        self.rates: list[float] = []
        self.latencies: list[float] = []
        with connection.cursor() as cursor:
            cursor.execute(CREATE_TABLE)

        def drop() -> None:
            with connection.cursor() as cursor:
                cursor.execute(DROP_TABLE)

        ctx.on_cleanup(drop)
        for _ in range(ctx.n(20, minimum=5)):  # first requests: imports, connections
            driver.command()

    def measure(self, warmup: float, window: float) -> None:
        run = sustained(self.driver, CLIENTS, warmup, window, self.meter)
        self.rates.append(run["rate"])
        self.cpu.append(run["cpu"])
        self.latencies += run["latencies"]
        self.ctx.log(f"http ceiling: bare DRF view {run['rate']:,.0f} POST/s; CPU per request {_cpu(run['cpu'])}")

    @property
    def rate(self) -> float | None:
        return statistics.fmean(self.rates) if self.rates else None

    def result(self, common: dict[str, Any]) -> Result:
        return Result(
            name="http_ceiling_bare_drf_post",
            ours=self.rate,
            unit="requests/s",
            extra={
                "clients": CLIENTS,
                "windows": [round(r, 1) for r in self.rates],
                "post_request": latency_summary(self.latencies),
                "errors": dict(self.driver.errors),
                "cpu_per_request": self.cpu,
                "web": common["web"],
            },
            note="bench/ceiling: knox token authentication, a small serializer, one INSERT, 202; "
            "the same gunicorn settings; interleaved with http_sustained_post_wait",
        )


def _measure(
    ctx: Context,
    schema: str,
    driver: Driver,
    suffix: str,
    how: str,
    common: dict[str, Any],
    meter: CpuMeter,
    ceiling: Ceiling | None = None,
) -> list[Result]:
    for _ in range(ctx.n(20, minimum=5)):  # first requests: imports, connections, caches
        driver.command()
    warmup = ctx.seconds(3.0, minimum=1.0)
    window = ctx.seconds(10.0, minimum=2.0)
    if ceiling is not None:
        ceiling.measure(warmup, window)
    ctx.log(f"http{suffix}: sustained, {CLIENTS} clients, {warmup:.0f}s warm-up + {window:.0f}s")
    driver.post_seconds.clear()
    sus = sustained(driver, CLIENTS, warmup, window, meter)
    sus_posts = list(driver.post_seconds)
    ctx.log(f"http{suffix}: sustained {sus['rate']:,.0f} commands/s; CPU per command {_cpu(sus['cpu'])}")
    _settle(schema, timeout=ctx.seconds(30.0, minimum=5.0))
    if ceiling is not None:
        ceiling.measure(warmup, window)
    seconds = ctx.seconds(10.0, minimum=2.0)
    ctx.log(f"http{suffix}: fixed rate {RATE:.0f}/s for {seconds:.0f}s")
    ids_before = len(driver.ids)
    driver.post_seconds.clear()
    fixed = fixed_rate(driver, RATE, seconds, grace=max(2.0, seconds))
    fixed_ids = driver.ids[ids_before:]
    sched = latency_summary(fixed["from_schedule"])
    ctx.log(
        f"http{suffix}: at {fixed['offered_rate']:.0f}/s offered: p50/p99 {sched.get('p50_ms')}/{sched.get('p99_ms')} ms"
    )
    _settle(schema, timeout=ctx.seconds(30.0, minimum=5.0))
    common = {**common, "errors": dict(driver.errors), "statuses_after": status_counts(schema)}
    return [
        Result(
            name=f"http_sustained{suffix}",
            ours=sus["rate"],
            unit="commands/s",
            baseline=ceiling.rate if ceiling is not None else None,
            baseline_name="bare DRF view POST/s (http_ceiling_bare_drf_post)" if ceiling is not None else "",
            target=Target("≥ 0.9 × bare DRF POST", "ratio", ">=", 0.9)
            if ceiling is not None
            else Target("≥ 400 commands/s sustained", "ours", ">=", 400),
            extra={
                "clients": CLIENTS,
                "warmup_s": warmup,
                "window_s": window,
                "completed_in_window": sus["completed"],
                "post_to_processed": latency_summary(sus["latencies"]),
                "post_request_alone": latency_summary(sus_posts),
                "cpu_per_command": sus["cpu"],
                **common,
            },
            note=f"closed loop: each client does {how}",
        ),
        Result(
            name=f"http_p99_post_to_processed_at_200_per_s{suffix}",
            ours=sched.get("p99_ms"),
            unit="ms",
            target=Target("p99 < 250 ms at 200/s offered", "ours", "<", 250),
            extra={
                "offered": fixed["offered"],
                "offered_rate": round(fixed["offered_rate"], 1),
                "completed": fixed["completed"],
                "unfinished_at_cutoff": fixed["unfinished_at_cutoff"],
                "client_threads": RATE_POOL,
                "started_late_over_5ms": fixed["started_late"],
                "from_scheduled_send": sched,
                "from_post": latency_summary(fixed["from_post"]),
                "post_request_alone": latency_summary(driver.post_seconds),
                "server_created_to_processed": latency_summary(server_latencies(schema, fixed_ids)),
                **common,
            },
            note=f"open loop ({how}); latency from the scheduled send to the answer that says processed"
            + (
                f"; {fixed['unfinished_at_cutoff']} command(s) unfinished at the cut-off count with their "
                "latency so far (the percentiles are lower bounds)"
                if fixed["unfinished_at_cutoff"]
                else ""
            ),
        ),
    ]


def _cpu(figures: dict[str, Any]) -> str:
    """'12.3 ms (web 5.1, worker 3.2, ...), machine 97% busy' from CpuMeter.per()."""
    if not figures:
        return "—"
    parts = ", ".join(f"{name} {ms:.1f}" for name, ms in figures["cpu_ms_per_unit"].items())
    return f"{figures['cpu_ms_per_unit_total']:.1f} ms ({parts}), machine {figures['machine_busy']:.0%} busy"


def web_shape() -> str:
    """The web tier the benchmark ran against, as gunicorn_conf.py configures it."""
    from django.conf import settings

    from intent_project import gunicorn_conf

    return (
        f"gunicorn + uvicorn workers (front door, intent_project/asgi.py), {gunicorn_conf.workers} processes "
        f"x {settings.WEB_THREADS} threads"
    )


def _settle(schema: str, timeout: float) -> None:
    """Let the backlog of one phase drain before the next one starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = status_counts(schema)
        if not counts.get("pending") and not counts.get("consumed"):
            return
        time.sleep(0.1)
