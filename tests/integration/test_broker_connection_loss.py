"""A worker's broker connection that drops is closed without killing the worker.

kombu 5.7.0: closing a Redis channel a second time, after the connection's transport
was detached (what Celery's consumer does when Redis goes away), raised AttributeError
instead of a connection error, and the worker exited. `intent_project.celery` turns it
into the connection error it is. This reproduces the consumer's close against a real
Redis server that is killed, with one message delivered and not acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
from kombu.common import ignore_errors

import intent_project.celery  # noqa: F401  (the worker imports it; it applies the fix)
from devenv import Redis


@pytest.fixture
def doomed_redis(tmp_path: Path) -> Iterator[tuple[Redis, str]]:
    server = Redis(tmp_path / "redis")
    server.start()
    yield server, server.url()
    server.kill()


def test_closing_a_half_closed_channel_after_the_broker_died_raises_nothing(doomed_redis):
    server, url = doomed_redis
    connection = kombu.Connection(url)
    channel = connection.default_channel
    queue = kombu.Queue("intent-test-outage", channel=channel)
    queue.declare()
    kombu.Producer(channel).publish({"n": 1}, routing_key="intent-test-outage")
    assert queue.get(no_ack=False) is not None  # delivered, not acknowledged

    server.kill()
    # What the consumer's first, interrupted close and collect() leave behind: the
    # channel's pools dropped, the transport detached from its connection.
    channel._disconnect_pools()
    connection._do_close_transport()

    ignore_errors(connection, connection.close)  # raised AttributeError before the fix
