"""/t/<tenant>/api/projections/: each projection's checkpoint, lag behind the log, and health."""

from __future__ import annotations

from tests.api.helpers import client_for, head_position, project, projections_url, submit_and_process


def projections(client):
    response = client.get(projections_url())
    assert response.status_code == 200, response.json()
    return {p["name"]: p for p in response.json()}


def test_it_lists_every_projection_with_its_read_models_and_health(world):
    listed = projections(client_for(world["vera"]))

    assert {"system_status", "system_metrics", "system_saga"} <= set(listed)
    assert (listed["system_status"]["kind"], listed["system_saga"]["kind"]) == ("projection", "saga")
    assert listed["system_status"]["read_models"] == ["system_status"]
    assert "testExecuted" in listed["system_metrics"]["event_types"]
    for projection in listed.values():
        assert projection["status"] == "running"
        assert projection["failures"] == 0 and projection["last_error"] is None


def test_it_shows_lag_until_the_projections_catch_up(world):
    project(world.acme)
    dave = client_for(world["dave"])
    submit_and_process(dave, "logMessage", {"message": "hi"}, world.acme)
    head = head_position(world.acme)

    behind = projections(dave)
    project(world.acme)
    caught_up = projections(dave)

    assert behind["system_status"]["head"] == head
    assert behind["system_status"]["checkpoint"] < head
    assert behind["system_status"]["lag"] == head - behind["system_status"]["checkpoint"]
    for projection in caught_up.values():
        assert (projection["head"], projection["checkpoint"], projection["lag"]) == (head, head, 0)


def test_a_superuser_without_membership_sees_the_projections(world):
    assert {"system_status", "system_metrics"} <= set(projections(client_for(world["root"])))
