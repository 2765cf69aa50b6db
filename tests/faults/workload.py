"""What the fault tests send: a planned mix of commands, submitted over HTTP by a few threads.

Every command carries a client-supplied id (the idempotency key), so a submission that
got no answer (server restarting, connection reset) is simply sent again with the same id
and body: the API answers 200 with the stored command instead of storing it twice.
"""

from __future__ import annotations

import collections
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.faults.cluster import ApiClient, Cluster


@dataclass(frozen=True)
class Planned:
    id: str
    tenant: str
    type: str
    payload: dict[str, Any]
    expected_events: int

    @property
    def system_id(self) -> str:
        return str(self.payload["systemId"])

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "payload": self.payload}


def system_ids(tenants: tuple[str, ...], per_tenant: int, rng: random.Random) -> dict[str, list[str]]:
    return {
        t: [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(per_tenant)] for t in tenants
    }


def plan(
    n: int,
    systems: dict[str, list[str]],
    rng: random.Random,
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
) -> list[Planned]:
    """`n` commands spread over the tenants' systems: logMessage, emitMultipleEvents (1..5
    events), executeTest, in the given proportions."""
    tenants = sorted(systems)
    out: list[Planned] = []
    for i in range(n):
        tenant = tenants[i % len(tenants)]
        system_id = rng.choice(systems[tenant])
        kind = rng.choices(("logMessage", "emitMultipleEvents", "executeTest"), weights=weights)[0]
        command_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if kind == "logMessage":
            payload: dict[str, Any] = {"message": f"fault #{i}", "systemId": system_id}
            expected = 1
        elif kind == "emitMultipleEvents":
            expected = rng.randint(1, 5)
            payload = {"count": expected, "systemId": system_id}
        else:
            payload = {"testId": command_id, "testName": f"fault-{i}", "systemId": system_id}
            expected = 1
        out.append(Planned(command_id, tenant, kind, payload, expected))
    return out


@dataclass
class SubmitStats:
    sent: int = 0  # commands the API accepted (202 or idempotent 200)
    requests: int = 0  # HTTP requests made, retries included
    resent: int = 0  # requests repeated after no answer / 5xx
    stale_retries: int = 0  # transport-level: a closed keep-alive connection, sent again once
    first_try: collections.Counter[int] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    rejected: list[tuple[str, int, Any]] = field(default_factory=list)  # 4xx: a test bug or an app bug
    unsent: list[str] = field(default_factory=list)
    accepted_at: dict[str, float] = field(default_factory=dict)
    first_status: dict[str, str] = field(default_factory=dict)  # the stored status in the answer
    errors: list[tuple[float, int, Any]] = field(default_factory=list)  # (t, status, body) of re-sent ones
    seconds: float = 0.0
    max_latency: float = 0.0

    def summary(self) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        return (
            f"accepted {self.sent} commands in {self.seconds:.1f}s ({rate:.0f}/s) with {self.requests} requests, "
            f"{self.resent} re-sent after no answer/5xx, {self.stale_retries} stale keep-alive retries; "
            f"first-try statuses {dict(self.first_try)}, "
            f"all statuses {dict(self.statuses)}; slowest request {self.max_latency:.2f}s"
        )


class Submitter:
    """Sends planned commands from `threads` HTTP clients, in the background.

    * `time_box`: stop starting new commands after this many seconds (a command already
      started is still sent until the API accepts it), so a slow machine sends fewer
      commands instead of running longer. The test reports how many it sent.
    * `max_open`: closed loop; hold back while this many commands are not final yet
      (pending or consumed), so the test measures faults rather than an ever-growing
      backlog. None: open loop (send regardless). A test may change it while running
      (open loop during a broker outage, closed loop around it).
    * `rate`: at most this many new commands per second (open loop at a steady pace).
    """

    def __init__(
        self,
        cluster: Cluster,
        planned: list[Planned],
        threads: int = 6,
        time_box: float | None = None,
        max_open: int | None = None,
        rate: float | None = None,
        give_up_after: float = 60.0,
        retry_pause: float = 0.25,
    ) -> None:
        self.cluster = cluster
        self.planned = planned
        self.threads = threads
        self.time_box = time_box
        self.max_open = max_open
        self.rate = rate
        self._next_slot = 0.0
        self.give_up_after = give_up_after
        self.retry_pause = retry_pause
        self.stats = SubmitStats()
        self.attempted: list[Planned] = []  # every command at least one request was made for
        self._queue: queue.Queue[Planned] = queue.Queue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._stop = threading.Event()
        self._open = 0
        self._open_changed = threading.Condition(self._lock)

    def start(self) -> Submitter:
        for item in self.planned:
            self._queue.put(item)
        self._t0 = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run, name=f"submit-{i}", daemon=True) for i in range(self.threads)
        ]
        for thread in self._threads:
            thread.start()
        if self.max_open is not None:
            threading.Thread(target=self._watch_open, name="submit-monitor", daemon=True).start()
        return self

    def stop_new(self) -> None:
        """Start no further commands (those in flight are still completed)."""
        self._stop.set()
        with self._open_changed:
            self._open_changed.notify_all()

    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def progress(self) -> int:
        with self._lock:
            return self.stats.sent

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def join(self, timeout: float | None = None) -> SubmitStats:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._stop.set()
        if not self.done():
            raise AssertionError(f"submission still running after {timeout}s: {self.stats.summary()}")
        self.stats.seconds = max((t for t in self.stats.accepted_at.values()), default=self._t0) - self._t0
        return self.stats

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self.time_box is not None and self.elapsed() > self.time_box)

    def _watch_open(self) -> None:
        while not self.done():
            try:
                value = self.cluster.open_commands()
            except Exception:  # the database may be restarting: keep the last value
                value = None
            with self._open_changed:
                if value is not None:
                    self._open = value
                self._open_changed.notify_all()
            time.sleep(0.2)

    def _wait_for_room(self) -> None:
        if self.rate:
            with self._lock:  # a steady pace that never "catches up" after being held back
                slot = max(self._next_slot, time.monotonic())
                self._next_slot = slot + 1.0 / self.rate
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        with self._open_changed:
            # max_open may be lifted (set to None) by the test while we wait: re-read it.
            while (limit := self.max_open) is not None and self._open >= limit and not self._stopping():
                self._open_changed.wait(0.5)
            self._open += 1  # count our own send until the monitor's next reading

    def _run(self) -> None:
        client: ApiClient = self.cluster.new_client()
        try:
            while True:
                self._wait_for_room()
                if self._stopping():
                    return
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return
                with self._lock:
                    self.attempted.append(item)
                self._send(client, item)
        finally:
            client.close()

    def _send(self, client: ApiClient, item: Planned) -> None:
        path = f"/t/{item.tenant}/api/commands/"
        deadline = time.monotonic() + self.give_up_after
        first = True
        while True:
            t0 = time.monotonic()
            resp = client.request("POST", path, item.body(), timeout=30)
            latency = time.monotonic() - t0
            with self._lock:
                self.stats.requests += 1
                self.stats.statuses[resp.status] += 1
                self.stats.max_latency = max(self.stats.max_latency, latency)
                self.stats.stale_retries += int(resp.stale_retry)
                if first:
                    self.stats.first_try[resp.status] += 1
                if resp.status in (200, 202):
                    self.stats.sent += 1
                    self.stats.accepted_at[item.id] = time.monotonic()
                    if isinstance(resp.body, dict):
                        self.stats.first_status[item.id] = str(resp.body.get("status"))
                    return
                if 400 <= resp.status < 500 and resp.status not in (408, 429):
                    self.stats.rejected.append((item.id, resp.status, resp.body))
                    return
                if time.monotonic() > deadline:
                    self.stats.unsent.append(item.id)
                    return
                self.stats.resent += 1
                self.stats.errors.append((round(time.monotonic() - self._t0, 2), resp.status, resp.body))
            first = False
            time.sleep(self.retry_pause)
