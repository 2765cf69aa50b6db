"""Worker pools per queue, and a beat that runs twice.

The write side (the `commands` queue) and the read side (`projections`, `sweeps`) can be
served by separate pools on separate hosts that share nothing but PostgreSQL and Redis:
here two workers started the README's way, `-Q commands` and `-Q projections,sweeps`, run
the whole banking flow, the transfer saga included. Then two beats run at once (a
deployment that started a second one by mistake): every sweep runs twice, and a command
whose wake-up was lost is still processed exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from commands_app.models import Command, CommandStatus
from devenv import Proc
from devenv.procs import beat
from events_app.models import Event
from intent_project import wakeups
from tests.conftest import app_env, start_worker, wait_until
from tests.integration.helpers import submit

pytestmark = pytest.mark.worker

SWEEP = "intent_project.tasks.sweep_all_tenants"


@pytest.fixture(scope="module")
def pools(world, isolated_redis, tmp_path_factory) -> Iterator[tuple[Proc, Proc, Path]]:
    logs = tmp_path_factory.mktemp("pools")
    # The read pool sweeps; a command pending a moment is due for a re-sent wake-up.
    quick = {"COMMAND_STALE_AFTER_SECONDS": "0.5"}
    write = start_worker(logs / "commands.log", "-Q", "commands", "-n", "commands@%h", **quick)
    read = start_worker(logs / "read.log", "-Q", "projections,sweeps", "-n", "read@%h", **quick)
    yield write, read, logs
    for worker in (write, read):
        worker.stop()


def _processed(tenant, command_id: uuid.UUID, timeout: float = 60) -> Command:
    def done() -> Command | None:
        with schema_context(tenant.schema_name):
            command = Command.objects.get(pk=command_id)
        assert command.status != CommandStatus.FAILED, command.error
        return command if command.status == CommandStatus.PROCESSED else None

    found: Command = wait_until(done, timeout=timeout)
    return found


def _send(tenant, type_name: str, payload: dict) -> uuid.UUID:
    return submit(tenant, type_name, payload, role="admin").id


def test_a_commands_pool_and_a_read_pool_run_the_banking_flow_saga_included(fresh_tenant, pools):
    write, read, logs = pools
    source, target = uuid.uuid4(), uuid.uuid4()
    for account in (source, target):
        _processed(
            fresh_tenant,
            _send(
                fresh_tenant, "openAccount", {"accountId": str(account), "owner": "Ann", "currency": "EUR"}
            ),
        )
    _processed(fresh_tenant, _send(fresh_tenant, "depositMoney", {"accountId": str(source), "amount": 500}))
    transfer = uuid.uuid4()
    _processed(
        fresh_tenant,
        _send(
            fresh_tenant,
            "transferMoney",
            {
                "transferId": str(transfer),
                "fromAccountId": str(source),
                "toAccountId": str(target),
                "amount": 120,
            },
        ),
    )

    # The saga's steps: issued by the read pool (sagas are consumers), run by the write pool.
    def settled() -> list[str] | None:
        with schema_context(fresh_tenant.schema_name):
            types = list(
                Event.objects.filter(stream_id=transfer).order_by("version").values_list("type", flat=True)
            )
        return types if "transferCompleted" in types else None

    assert wait_until(settled, timeout=60) == ["transferRequested", "transferCompleted"]

    def steps_processed() -> set[str] | None:
        with schema_context(fresh_tenant.schema_name):
            first = Command.objects.get(aggregate_id=transfer, type="transferMoney")
            steps = Command.objects.filter(correlation_id=first.id).exclude(pk=first.pk)
            statuses = set(steps.values_list("status", flat=True))
            return (
                set(steps.values_list("type", flat=True)) if statuses == {CommandStatus.PROCESSED} else None
            )

    assert wait_until(steps_processed, timeout=60) >= {
        "debitAccountForTransfer",
        "creditAccountForTransfer",
        "markTransferCompleted",
    }
    # Each pool ran only its own queues' tasks.
    write_log, read_log = (logs / "commands.log").read_text(), (logs / "read.log").read_text()
    assert "commands_app.tasks.drain_commands" in write_log
    assert "projections_app.tasks" not in write_log
    assert "projection.batch" not in write_log  # nor inline: it does not serve `projections`
    assert "projections_app.tasks" in read_log
    assert "commands_app.tasks.drain_commands" not in read_log
    assert write.running() and read.running()


def test_two_beats_sweep_twice_and_a_lost_wake_up_is_processed_once(fresh_tenant, pools, tmp_path):
    _, read, logs = pools
    env = app_env(SWEEP_INTERVAL_SECONDS="0.5")
    beats = [
        Proc(
            f"beat-{n}",
            beat("--schedule", str(tmp_path / f"schedule-{n}"), "--pidfile", str(tmp_path / f"beat-{n}.pid")),
            env,
            tmp_path / f"beat-{n}.log",
        ).start()
        for n in (1, 2)
    ]
    try:
        # Lose the wake-ups: the coalescing key says a drain is queued already and none is,
        # as after a lost message (the key then expires; wakeups.TTL_SECONDS in production).
        wakeups.redis_client().set(f"intent:commands:wake:{fresh_tenant.schema_name}", 1, ex=2)
        ids = [
            _send(fresh_tenant, "logMessage", {"message": f"lost {n}", "systemId": str(uuid.uuid4())})
            for n in range(3)
        ]
        for command_id in ids:
            _processed(fresh_tenant, command_id)

        def swept_by_both() -> bool:
            sent = [(tmp_path / f"beat-{n}.log").read_text().count("Sending due task") for n in (1, 2)]
            return min(sent) >= 3

        wait_until(swept_by_both, timeout=30)
    finally:
        for proc in beats:
            proc.stop()
    with schema_context(fresh_tenant.schema_name):
        for command_id in ids:
            command = Command.objects.get(pk=command_id)
            assert command.status == CommandStatus.PROCESSED
            assert Event.objects.filter(command_id=command_id).count() == 1
    assert (logs / "read.log").read_text().count(SWEEP) >= 6
