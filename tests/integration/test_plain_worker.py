"""`celery -A intent_project worker`, with no flags at all, serves every queue.

A worker started the standard way must consume the commands, projections and sweeps
queues (they are declared in settings), or commands stay `consumed` forever because no
projection ever runs. The worker here is started exactly as the README shows, on a Redis
database of its own, so no other test worker can do its work for it.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery import Celery
from django.conf import settings

from commands_app.models import CommandStatus
from devenv import Proc
from devenv.procs import BIN
from intent_project import wakeups
from tests.conftest import TEST_REDIS_DB, app_env, wait_until
from tests.integration.helpers import reload, submit, test_payload

pytestmark = pytest.mark.worker

PLAIN_WORKER_REDIS_DB = TEST_REDIS_DB - 1  # its own, so no other test worker serves it


def _redis_url(db: int) -> str:
    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def test_a_worker_started_without_flags_runs_commands_and_projections(fresh_tenant, tmp_path):
    broker = _redis_url(PLAIN_WORKER_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    argv = [str(BIN / "celery"), "-A", "intent_project", "worker"]  # as README.md has it: nothing else
    worker = Proc("plain-worker", argv, app_env(REDIS_URL=broker), tmp_path / "plain-worker.log").start()
    try:
        # Store the command without a wake-up on the shared test broker (the coalescing key
        # says one is queued already), then wake only the plain worker's broker.
        wakeups.redis_client().set(f"intent:commands:wake:{fresh_tenant.schema_name}", 1, ex=60)
        command_id = uuid.uuid4()
        submit(fresh_tenant, "executeTest", test_payload(), command_id=command_id)
        # Not the current app: shared tasks published later by other tests would follow it.
        with Celery(broker=broker, set_as_current=False) as sender:
            sender.send_task(
                "commands_app.tasks.drain_commands", args=(fresh_tenant.schema_name,), queue="commands"
            )

        # `processed` needs both queues: the drain appends (commands), the projections
        # catch up and settle the command (projections).
        command = wait_until(
            lambda: (c := reload(fresh_tenant, command_id)).status == CommandStatus.PROCESSED and c,
            timeout=60,
        )
        assert command.result["events"][0]["type"] == "testExecuted"
    finally:
        worker.stop()
