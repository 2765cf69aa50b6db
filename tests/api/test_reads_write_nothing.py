"""Reading the read side writes nothing: projection lists and pages, read-model lists and
rows, and read-your-writes waits (`?min_position`) send no INSERT, UPDATE or DELETE, even
for a projection whose checkpoint row does not exist yet (it reads as position 0)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tests.api.helpers import (
    assert_error,
    client_for,
    execute_test,
    project,
    projections_url,
    read_model_url,
    submit_and_process,
)

WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


def writes(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if WRITE.match(q["sql"])]


@pytest.fixture
def system(world) -> uuid.UUID:
    system_id = uuid.uuid4()
    submit_and_process(
        client_for(world["dave"]), "executeTest", execute_test(system_id=system_id), world.acme
    )
    project(world.acme)
    return system_id


@pytest.fixture
def without_checkpoint(world):
    """system_status has no checkpoint row (as before a worker first ran it); rolled back."""
    from projections_app.models import ProjectionState

    with schema_context(world.acme.schema_name):
        ProjectionState.objects.filter(name="system_status").delete()


def _rows_of(world) -> set[str]:
    from projections_app.models import ProjectionState

    with schema_context(world.acme.schema_name):
        return set(ProjectionState.objects.values_list("name", flat=True))


def test_reading_projections_and_read_models_sends_no_write(world, system):
    dave = client_for(world["dave"])
    reads = [
        projections_url(),
        f"{projections_url()}system_status/",
        read_model_url("system_status"),
        read_model_url("system_status") + "?last_result=success",
        read_model_url("system_status", str(system)),
        read_model_url("system_status", str(system)) + "?min_position=1&wait=0.2",
        read_model_url("system_status") + f"?min_position={2**40}&wait=0.2",
    ]
    with CaptureQueriesContext(connection) as captured:
        answers = [dave.get(url).status_code for url in reads]

    assert answers == [200, 200, 200, 200, 200, 200, 503]
    assert captured.captured_queries, "nothing was captured"
    assert writes(captured) == []


def test_a_projection_without_a_checkpoint_row_reads_as_not_started_and_gets_none(
    world, system, without_checkpoint
):
    dave = client_for(world["dave"])
    before = _rows_of(world)
    with CaptureQueriesContext(connection) as captured:
        listed = {p["name"]: p for p in dave.get(projections_url()).json()}
        page = dave.get(read_model_url("system_status"))
        behind = dave.get(read_model_url("system_status") + "?min_position=1&wait=0")

    assert (listed["system_status"]["checkpoint"], listed["system_status"]["status"]) == (0, "running")
    assert listed["system_status"]["lag"] == listed["system_status"]["head"] > 0
    assert page.status_code == 200 and page["X-Projection-Checkpoint"] == "0"
    assert assert_error(behind, 503, "projection_behind")["details"]["checkpoint"] == 0
    assert writes(captured) == []
    assert "system_status" not in before and _rows_of(world) == before


def test_the_check_sees_a_write(world):
    from projections_app.runner import ensure_checkpoints

    with CaptureQueriesContext(connection) as captured, schema_context(world.acme.schema_name):
        ensure_checkpoints()

    assert writes(captured)
