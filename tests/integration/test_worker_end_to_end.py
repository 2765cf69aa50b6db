"""The whole path through a real Celery worker process: API in, events, read model out."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from commands_app.models import Command, CommandStatus
from commands_app.tasks import process_command
from events_app.models import Event
from intent_project.tasks import sweep_all_tenants
from projections_app.models import SystemStatus
from tests.conftest import TEST_REDIS_DB, wait_until
from tests.integration.helpers import reload, submit, test_payload

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def worker(celery_worker):
    return celery_worker


def test_an_api_client_sees_its_command_processed_and_the_read_model_updated(worker, live_db, world):
    client = world["dave"].client()
    system_id = uuid.uuid4()
    posted = client.post(
        "/t/acme/api/commands/",
        {
            "type": "executeTest",
            "payload": test_payload(system_id=system_id, parameters={"suite": "e2e"}),
        },
        format="json",
    )
    assert posted.status_code == 202, posted.content
    command_id = posted.json()["id"]
    done = client.get(f"/t/acme/api/commands/{command_id}/?wait=20").json()
    assert done["status"] == "processed", done
    (event,) = done["result"]["events"]
    assert event["type"] == "testExecuted"
    row = client.get(f"/t/acme/api/read-models/system_status/{system_id}/").json()
    assert row["number_executed_tests"] == 1
    assert row["last_parameters"] == {"suite": "e2e"}
    assert row["last_event_id"] == event["id"]
    assert row["last_tester_id"] == str(world["dave"].user.pk)
    events = client.get(f"/t/acme/api/events/?aggregate_id={system_id}").json()["results"]
    assert [e["id"] for e in events] == [event["id"]]


def test_a_post_with_wait_answers_with_the_outcome_in_one_request(worker, live_db, world):
    client = world["dave"].client()
    command_id = uuid.uuid4()
    body = {"id": str(command_id), "type": "executeTest", "payload": test_payload()}

    posted = client.post("/t/acme/api/commands/?wait=20", body, format="json")

    assert posted.status_code == 202, posted.content  # stored by this request
    assert posted.json()["status"] == "processed"
    assert posted.json()["result"]["events"][0]["type"] == "testExecuted"
    again = client.post("/t/acme/api/commands/?wait=20", body, format="json")  # the idempotent replay
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["status"] == "processed"

    sam = world["sam"].client()
    failed = sam.post(
        "/t/acme/api/commands/?wait=20", {"type": "simulateFailure", "payload": {}}, format="json"
    )
    assert failed.status_code == 202
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"]["code"] == "simulated_failure"


def test_a_failed_command_reports_its_domain_error(worker, live_db, world):
    client = world["sam"].client()
    posted = client.post("/t/acme/api/commands/", {"type": "simulateFailure", "payload": {}}, format="json")
    done = client.get(f"/t/acme/api/commands/{posted.json()['id']}/?wait=20").json()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "simulated_failure"


def test_a_message_delivered_three_times_executes_the_command_once(worker, fresh_tenant):
    cmd = submit(fresh_tenant, "emitMultipleEvents", {"count": 4})
    for _ in range(3):
        process_command.apply_async(args=(fresh_tenant.schema_name, str(cmd.id)))
    wait_until(lambda: reload(fresh_tenant, cmd.id).status == CommandStatus.PROCESSED)
    with schema_context(fresh_tenant.schema_name):
        assert Event.objects.filter(command_id=cmd.id).count() == 4
    assert reload(fresh_tenant, cmd.id).attempts == 1


def test_each_task_runs_in_the_schema_it_was_sent_for(worker, live_db, world, fresh_tenant):
    system_id = uuid.uuid4()
    here = submit(fresh_tenant, "logMessage", {"message": "fresh", "systemId": str(system_id)})
    there = submit(world.globex, "logMessage", {"message": "globex", "systemId": str(system_id)})
    wait_until(lambda: reload(fresh_tenant, here.id).status == CommandStatus.PROCESSED)
    wait_until(lambda: reload(world.globex, there.id).status == CommandStatus.PROCESSED)
    with schema_context(fresh_tenant.schema_name):
        assert list(Event.objects.filter(stream_id=system_id).values_list("payload__text", flat=True)) == [
            "fresh"
        ]
        assert SystemStatus.objects.get(system_id=system_id).messages_logged == 1
    with schema_context(world.globex.schema_name):
        assert list(Event.objects.filter(stream_id=system_id).values_list("payload__text", flat=True)) == [
            "globex"
        ]


def test_a_lost_message_is_recovered_by_the_sweep(worker, fresh_tenant):
    # Store a command the way the bus does, but never send its wake-up message.
    with schema_context(fresh_tenant.schema_name):
        lost = Command.objects.create(
            type="logMessage",
            payload={"message": "lost"},
            body_hash="x",
            metadata={"tenant": fresh_tenant.slug, "user_id": "1", "role": "developer"},
            aggregate_type="system",
        )
    assert reload(fresh_tenant, lost.id).status == CommandStatus.PENDING

    def swept() -> bool:
        sweep_all_tenants.apply_async()
        return reload(fresh_tenant, lost.id).status == CommandStatus.PROCESSED

    wait_until(swept, timeout=30, interval=1.0)
    with schema_context(fresh_tenant.schema_name):
        assert Event.objects.filter(command_id=lost.id).count() == 1


def test_wake_ups_go_to_the_test_redis_database(worker):
    assert settings.REDIS_URL.endswith(f"/{TEST_REDIS_DB}")
    assert redis.Redis.from_url(settings.REDIS_URL).ping()


def test_a_scheduled_command_runs_once_its_time_has_come(worker, live_db, world):
    from datetime import datetime, timedelta

    client = world["dave"].client()
    not_before = timezone.now() + timedelta(seconds=2)
    posted = client.post(
        "/t/acme/api/commands/",
        {"type": "logMessage", "payload": {"message": "later"}, "not_before": not_before.isoformat()},
        format="json",
    )
    assert posted.status_code == 202
    assert posted.json()["status"] == "pending"
    done = client.get(f"/t/acme/api/commands/{posted.json()['id']}/?wait=20").json()
    assert done["status"] == "processed"
    assert datetime.fromisoformat(done["processed_at"]) >= not_before


def test_a_plain_worker_runs_the_projections_in_the_task_that_handled_the_commands(worker, live_db, world):
    """`celery -A intent_project worker` serves every queue, so the drain task runs the
    tenant's projections right after its commit (PROJECTIONS_INLINE): the command is
    processed, its read model written, and no run_projections message was sent for it."""
    client = world["dave"].client()
    system_id = uuid.uuid4()
    before = worker.log_path.stat().st_size
    posted = client.post(
        "/t/acme/api/commands/?wait=20",
        {"type": "executeTest", "payload": test_payload(system_id=system_id)},
        format="json",
    )
    assert posted.json()["status"] == "processed", posted.json()
    row = client.get(f"/t/acme/api/read-models/system_status/{system_id}/").json()
    assert row["number_executed_tests"] == 1

    def logged() -> str | None:
        with worker.log_path.open() as log:
            log.seek(before)
            text = log.read()
        return text if "commands_app.tasks.drain_commands" in text and "projection.batch" in text else None

    text = wait_until(logged, timeout=10)
    assert "projections_app.tasks.run_projections" not in text
