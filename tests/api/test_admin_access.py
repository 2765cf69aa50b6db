"""The platform admin (/admin/) and the per-tenant admin (/t/<tenant>/admin/): who gets in,
and that the tenant admin only shows (events cannot be changed or deleted there)."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tests.api.helpers import client_for, execute_test, project, send, submit_and_process

TENANT_INDEX = "Commands, events and read models"  # TenantAdminSite.index_title


def browser(persona) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(persona.user)
    return client


@pytest.fixture
def event(world):
    """One stored testExecuted event in acme (as a row)."""
    from events_app.models import Event

    command = submit_and_process(
        client_for(world["dave"]), "executeTest", execute_test(name="admin view"), world.acme
    )
    with schema_context(world.acme.schema_name):
        return Event.objects.get(command_id=command["id"])


@pytest.mark.parametrize("name", ["ada", "root"])
def test_a_staff_member_and_a_superuser_open_the_tenant_admin(world, name):
    response = browser(world[name]).get("/t/acme/admin/")

    assert response.status_code == 200
    assert TENANT_INDEX in response.content.decode()
    assert "Intent: tenant acme" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "path"),
    [("stan", "/t/acme/admin/"), ("alice", "/t/acme/admin/"), ("ada", "/t/globex/admin/")],
)
def test_staff_without_membership_and_members_without_staff_never_see_the_tenant_admin(world, name, path):
    client = browser(world[name])

    first = client.get(path)
    landed = client.get(path, follow=True)

    assert first.status_code == 302
    assert first["Location"].startswith(path + "login/")
    assert TENANT_INDEX not in landed.content.decode()


def test_a_non_member_cannot_open_a_tenant_changelist_directly(world):
    response = browser(world["stan"]).get("/t/acme/admin/commands_app/command/")

    assert response.status_code == 302
    assert "/t/acme/admin/login/" in response["Location"]


def test_staff_open_the_platform_admin_and_others_do_not(world):
    assert browser(world["stan"]).get("/admin/").status_code == 200
    response = browser(world["alice"]).get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("", True),
        ("?status=pending", True),
        ("?status__exact=pending", True),
        ("?status__exact=failed", False),
        ("?q={id}", True),
        ("?q=not-a-uuid", False),
    ],
)
def test_the_tenant_admin_lists_commands_with_filters_and_search(world, query, listed):
    command = send(client_for(world["dave"]), "logMessage", {"message": "listed"}).json()

    response = browser(world["ada"]).get(
        "/t/acme/admin/commands_app/command/" + query.format(id=command["id"])
    )

    assert response.status_code == 200
    assert (command["id"] in response.content.decode()) is listed


def test_the_tenant_admin_shows_a_command(world):
    command = send(client_for(world["dave"]), "logMessage", {"message": "shown"}).json()

    response = browser(world["ada"]).get(f"/t/acme/admin/commands_app/command/{command['id']}/change/")

    assert response.status_code == 200
    assert "shown" in response.content.decode()
    assert 'name="_save"' not in response.content.decode()


def test_an_event_page_is_read_only(world, event):
    response = browser(world["ada"]).get(f"/t/acme/admin/events_app/event/{event.position}/change/")

    assert response.status_code == 200
    assert "admin view" in response.content.decode()
    assert 'name="_save"' not in response.content.decode()
    assert "/delete/" not in response.content.decode()


def test_posting_to_an_event_page_changes_nothing(world, event):
    from events_app.models import Event

    response = browser(world["ada"]).post(
        f"/t/acme/admin/events_app/event/{event.position}/change/", {"type": "tampered", "payload": "{}"}
    )

    assert response.status_code == 403
    with schema_context(world.acme.schema_name):
        stored = Event.objects.get(pk=event.pk)
    assert (stored.type, stored.payload) == (event.type, event.payload)


@pytest.mark.parametrize("page", ["{position}/delete/", "add/"])
def test_events_cannot_be_deleted_or_added_in_the_admin(world, event, page):
    response = browser(world["root"]).get(
        "/t/acme/admin/events_app/event/" + page.format(position=event.position)
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("changelist", "shows"),
    [
        ("projections_app/systemstatus/", "{stream_id}"),
        ("projections_app/systemmetrics/", "tenant"),
        ("projections_app/projectionstate/", "system_status"),
        ("events_app/event/", "testExecuted"),
        ("events_app/snapshot/", "snapshot"),
    ],
)
def test_the_tenant_admin_lists_events_projections_and_read_models(world, event, changelist, shows):
    project(world.acme)

    response = browser(world["ada"]).get("/t/acme/admin/" + changelist)

    assert response.status_code == 200
    assert shows.format(stream_id=event.stream_id) in response.content.decode()


def test_an_operator_checks_drift_from_the_projection_page(world):
    url = "/t/acme/admin/projections_app/projectionstate/"
    response = browser(world["ada"]).post(
        url, {"action": "check_drift", "_selected_action": ["system_status"]}, follow=True
    )
    assert response.status_code == 200
    assert "No drift" in response.content.decode()


def test_a_viewer_cannot_rebuild_from_the_admin(world):
    from django.contrib.auth import get_user_model

    vera = get_user_model().objects.get(username="vera")
    vera.is_staff = True
    vera.save()
    client = browser(world["vera"])
    listed = client.get("/t/acme/admin/projections_app/projectionstate/")
    response = client.post(
        "/t/acme/admin/projections_app/projectionstate/",
        {"action": "rebuild", "_selected_action": ["system_status"]},
        follow=True,
    )

    assert listed.status_code == 200 and 'value="rebuild"' not in listed.content.decode()
    assert "Rebuild queued" not in response.content.decode()
