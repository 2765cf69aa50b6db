"""The read side on a real PostgreSQL streaming replica.

The harness copies the test's embedded PostgreSQL with `pg_basebackup -R` and starts the
copy as a hot standby beside it; the web tier runs as `make run` runs it, with
DATABASE_REPLICA_URLS naming the standby, and a real worker processes the commands.
Pausing the standby's WAL replay (`pg_wal_replay_pause()`) makes the two tell apart: what
the API then reads without `min_position` is the standby's older copy, and a read with
`?min_position=` waits for the replay to resume.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from devenv import Postgres
from devenv.local import PG
from intent_project.db import replicas
from tests.conftest import wait_until
from tests.integration.web import WebTier

pytestmark = pytest.mark.worker

BALANCES = "/t/acme/api/read-models/account_balances/"
COMMANDS = "/t/acme/api/commands/"


@pytest.fixture(scope="module")
def standby(world, tmp_path_factory) -> Iterator[Postgres]:
    if settings.DATABASES["default"].get("HOST") != str(PG.socket_dir):
        pytest.skip("the replica is copied from the embedded PostgreSQL (DATABASE_URL names another server)")
    server = Postgres(tmp_path_factory.mktemp("standby") / "pg")
    server.start_replica_of(PG)
    yield server
    server.stop()


def _sql(server: Postgres, query: str) -> Any:
    with server.connect(str(settings.DATABASES["default"]["NAME"])) as conn:
        return conn.execute(query).fetchone()


@pytest.fixture(scope="module")
def web(standby, celery_worker, tmp_path_factory) -> Iterator[WebTier]:
    tier = WebTier(
        tmp_path_factory.mktemp("web") / "web.log",
        DATABASE_REPLICA_URLS=standby.url(str(settings.DATABASES["default"]["NAME"])),
        DATABASE_REPLICA_MAX_LAG_SECONDS="60",
        DATABASE_REPLICA_CHECK_SECONDS="0.2",
    ).start()
    yield tier
    tier.stop()


def _command(web: WebTier, token: str, type_name: str, payload: dict[str, Any]) -> int:
    """POST ?wait until processed; the highest position it recorded."""
    status, body, _ = web.request(
        "POST", f"{COMMANDS}?wait=20", token, {"type": type_name, "payload": payload}
    )
    assert status in (200, 202) and body["status"] == "processed", body
    return max(event["position"] for event in body["result"]["events"])


def _balance(web: WebTier, token: str, account: uuid.UUID, query: str = "") -> tuple[int, Any, int]:
    status, body, response = web.request("GET", f"{BALANCES}{account}/{query}", token)
    checkpoint = int(response.getheader("X-Projection-Checkpoint") or -1)
    return status, body, checkpoint


def _open(web: WebTier, token: str) -> tuple[uuid.UUID, int]:
    account = uuid.uuid4()
    position = _command(
        web, token, "openAccount", {"accountId": str(account), "owner": "Ann", "currency": "EUR"}
    )
    return account, position


def test_reads_come_from_the_standby_and_min_position_waits_for_its_replay(web, standby, world):
    token = world["bea"].token
    assert _sql(standby, "SELECT pg_is_in_recovery()") == (True,)
    account, opened = _open(web, token)
    # The longest wait there is: on a loaded machine the standby replays the whole cluster,
    # the other test process's databases included, and may be seconds behind.
    status, body, checkpoint = _balance(web, token, account, f"?min_position={opened}&wait=30")
    assert status == 200, body
    assert body["balance"] == 0 and checkpoint >= opened
    # The web tier's read-side connections are sessions on the standby.
    database = str(settings.DATABASES["default"]["NAME"])
    sessions = _sql(standby, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'")
    assert sessions[0] >= 1

    _sql(standby, "SELECT pg_wal_replay_pause()")
    try:
        deposited = _command(web, token, "depositMoney", {"accountId": str(account), "amount": 100})
        # The primary has it; the standby, replay paused, does not: a read without
        # min_position answers the standby's copy, checkpoint included.
        status, body, checkpoint = _balance(web, token, account)
        assert (status, body["balance"]) == (200, 0)
        assert checkpoint < deposited

        answer: dict[str, Any] = {}

        def read_your_write() -> None:
            t0 = time.monotonic()
            answer["reply"] = _balance(web, token, account, f"?min_position={deposited}&wait=15")
            answer["seconds"] = time.monotonic() - t0

        reader = threading.Thread(target=read_your_write)
        reader.start()
        time.sleep(1.0)
        assert reader.is_alive(), answer  # held: the standby has not replayed the deposit
    finally:
        _sql(standby, "SELECT pg_wal_replay_resume()")
    reader.join(20)
    status, body, checkpoint = answer["reply"]
    assert (status, body["balance"]) == (200, 100) and checkpoint >= deposited
    print(f"\nmin_position wait across a paused replay of ~1 s: {answer['seconds'] * 1000:.0f} ms")

    # Replaying normally, a read right after the write waits only for replication.
    waits = []
    for amount in (1, 2, 3, 4, 5):
        position = _command(web, token, "depositMoney", {"accountId": str(account), "amount": amount})
        t0 = time.monotonic()
        status, body, checkpoint = _balance(web, token, account, f"?min_position={position}&wait=30")
        waits.append(time.monotonic() - t0)
        assert status == 200 and checkpoint >= position
    assert body["balance"] == 115
    print(f"min_position reads right after a write: {', '.join(f'{w * 1000:.0f}' for w in waits)} ms")


def test_a_lagging_standby_is_skipped_and_ready_says_so(standby, celery_worker, world, tmp_path):
    token = world["bea"].token
    strict = WebTier(
        tmp_path / "web.log",
        DATABASE_REPLICA_URLS=standby.url(str(settings.DATABASES["default"]["NAME"])),
        DATABASE_REPLICA_MAX_LAG_SECONDS="0.5",
        DATABASE_REPLICA_CHECK_SECONDS="0.1",
    ).start()
    try:
        account, _ = _open(strict, token)
        _sql(standby, "SELECT pg_wal_replay_pause()")
        try:
            _command(strict, token, "depositMoney", {"accountId": str(account), "amount": 7})

            def lagging() -> dict[str, Any] | None:
                _, ready, _ = strict.request("GET", "/ready/")
                return ready["checks"]["replicas"] if ready["checks"]["replicas"]["usable"] == 0 else None

            report = wait_until(lagging, timeout=30, interval=0.2)
            assert report["configured"] == 1
            assert next(iter(report["replicas"].values()))["reason"] == "lagging"
            # Past the threshold the primary answers: the deposit is there.
            status, body, _ = _balance(strict, token, account)
            assert (status, body["balance"]) == (200, 7)
            status, ready, _ = strict.request("GET", "/ready/")
            assert status == 200 or ready["checks"]["replicas"]["ok"], ready
        finally:
            _sql(standby, "SELECT pg_wal_replay_resume()")

        def caught_up() -> bool:
            _, ready, _ = strict.request("GET", "/ready/")
            return bool(ready["checks"]["replicas"]["usable"] == 1)

        wait_until(caught_up, timeout=60, interval=0.2)  # replay catches up with the cluster
    finally:
        strict.stop()


def test_a_stopped_standby_falls_back_to_the_primary(web, standby, world):
    token = world["bea"].token
    account, opened = _open(web, token)
    standby.stop()
    try:
        for query in ("", f"?min_position={opened}&wait=5"):
            status, body, checkpoint = _balance(web, token, account, query)
            assert (status, body["balance"]) == (200, 0), body
            assert checkpoint >= opened
        # Writes were never on the replica's path: they work whatever the standby does.
        deposited = _command(web, token, "depositMoney", {"accountId": str(account), "amount": 5})
        status, body, _ = _balance(web, token, account, f"?min_position={deposited}&wait=5")
        assert (status, body["balance"]) == (200, 5)
        _, ready, _ = web.request("GET", "/ready/")
        report = ready["checks"]["replicas"]
        assert report["usable"] == 0 and next(iter(report["replicas"].values()))["reason"].startswith(
            "unavailable"
        )
        status, events, _ = web.request("GET", "/t/acme/api/events/?limit=5", token)
        assert status == 200 and events["results"]
    finally:
        standby.start()

    def back() -> bool:
        _, ready, _ = web.request("GET", "/ready/")
        return bool(ready["checks"]["replicas"]["usable"] == 1)

    wait_until(back, timeout=20, interval=0.2)


def test_the_router_never_sends_a_write_to_a_replica():
    router = replicas.ReplicaRouter()
    token = replicas._reading.set("replica_1")
    try:
        assert router.db_for_read(object) == "replica_1"
        assert router.db_for_write(object) == "default"
        with replicas.primary():
            assert router.db_for_read(object) is None
    finally:
        replicas._reading.reset(token)
    assert router.db_for_read(object) is None
    assert router.allow_migrate("replica_1", "events_app") is False
    assert router.allow_migrate("default", "events_app") is None


def test_without_replicas_configured_reads_stay_on_the_primary(rf: Any) -> None:
    with replicas.reading(rf.get("/")) as alias:
        assert alias is None
        assert replicas.current() is None
