"""One operator policy (commands_app/operations.py), asked by the services that the API, the
tenant admin and the management commands all call: only the tenant's admins and developers
operate, and a refusal on any surface leaves nothing behind (no row changed, nothing queued).

`bea` (banker), `alice` (tester) and `vera` (viewer) are refused. Each may see and send the
failed command she is refused a retry of (vera sees none), so what refuses the retry is the
operator policy, not the read policy or the command's access rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import Client, RequestFactory
from django_tenants.utils import schema_context

from intent_project import lifecycle
from tests.api.helpers import (
    assert_error,
    client_for,
    command_url,
    projections_url,
    send,
    stored_command,
    submit_and_process,
)

REFUSED = "Only the tenant's admins and developers may do this."
ADMIN = "/t/acme/admin/"
NON_OPERATORS = ("bea", "alice", "vera")


def tenant_state(tenant: Any) -> dict[str, list[dict[str, Any]]]:
    """Every row an operator action could change, as values."""
    from commands_app.models import Command
    from projections_app.models import DeadLetter, ProjectionState, RebuildJob

    with schema_context(tenant.schema_name):
        return {
            "checkpoints": list(ProjectionState.objects.order_by("name").values()),
            "dead_letters": list(DeadLetter.objects.order_by("pk").values()),
            "rebuilds": list(RebuildJob.objects.order_by("pk").values()),
            "commands": list(Command.objects.order_by("pk").values()),
        }


@pytest.fixture
def leaves_nothing_behind(world: Any, django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """`with leaves_nothing_behind():` the block changes no row and queues no work (wake-ups,
    rebuilds and repairs are sent on commit)."""

    @contextmanager
    def check() -> Iterator[None]:
        before = tenant_state(world.acme)
        with django_capture_on_commit_callbacks() as queued:
            yield
        assert queued == [], "a refused action queued work"
        assert tenant_state(world.acme) == before, "a refused action changed rows"

    return check


def _failed(tenant: Any, command_id: str) -> str:
    from commands_app.models import Command

    with schema_context(tenant.schema_name):
        Command.objects.filter(pk=command_id).update(
            status="failed", error={"code": "simulated_failure", "message": "boom", "details": {}}
        )
    return command_id


@pytest.fixture
def operated(world: Any, stalled: Any) -> dict[str, Any]:
    """Something for every operator action: system_status stalled, a dead letter, a running
    rebuild, and a failed command for each non-operator (her own where she may send one)."""
    from projections_app.models import DeadLetter, RebuildJob

    event, _ = stalled
    with schema_context(world.acme.schema_name):
        letter = DeadLetter.objects.create(
            projection="system_metrics", event_id=event.id, position=event.position, event_type=event.type
        )
        job = RebuildJob.objects.create(projection="system_metrics", version=1)
    account = {"accountId": "5d2c1a3e-9f8b-4c7d-a6e5-1b2c3d4e5f60", "owner": "Ann", "currency": "EUR"}
    failed = {
        "alice": _failed(
            world.acme, send(client_for(world["alice"]), "logMessage", {"message": "x"}).json()["id"]
        ),
        "bea": _failed(world.acme, send(client_for(world["bea"]), "openAccount", account).json()["id"]),
        "vera": submit_and_process(client_for(world["ada"]), "simulateFailure", {}, world.acme)["id"],
    }
    return {"letter": letter.pk, "job": job.pk, "failed": failed}


# --- the API ----------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", NON_OPERATORS)
@pytest.mark.parametrize("action", ["resume", "skip"])
def test_a_refused_projection_action_over_the_api_leaves_nothing_behind(
    world, operated, leaves_nothing_behind, persona, action
):
    with leaves_nothing_behind():
        response = client_for(world[persona]).post(f"{projections_url()}system_status/{action}/")

    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("persona", NON_OPERATORS)
def test_a_refused_dead_letter_replay_over_the_api_leaves_nothing_behind(
    world, operated, leaves_nothing_behind, persona
):
    url = f"{projections_url()}system_metrics/dead-letters/{operated['letter']}/replay/"
    with leaves_nothing_behind():
        response = client_for(world[persona]).post(url)

    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(
    ("persona", "status", "code"),
    [("bea", 403, "forbidden"), ("alice", 403, "forbidden"), ("vera", 404, "not_found")],
)
def test_a_refused_retry_over_the_api_leaves_nothing_behind(
    world, operated, leaves_nothing_behind, persona, status, code
):
    command_id = operated["failed"][persona]
    with leaves_nothing_behind():
        response = client_for(world[persona]).post(command_url(command_id) + "retry/")

    assert_error(response, status, code)
    assert stored_command(world.acme, command_id).status == "failed"


def test_the_check_notices_what_an_allowed_action_changes_and_queues(world, operated, leaves_nothing_behind):
    with pytest.raises(AssertionError, match="queued work"), leaves_nothing_behind():
        assert client_for(world["dave"]).post(f"{projections_url()}system_status/resume/").status_code == 200


# --- the tenant admin -------------------------------------------------------------------------
def _actions(operated: dict[str, Any], persona: str) -> list[tuple[str, str, Any]]:
    """(changelist, action, selected pk) for every operator action of the tenant admin."""
    return [
        ("projections_app/projectionstate/", "resume", "system_status"),
        ("projections_app/projectionstate/", "skip", "system_status"),
        ("projections_app/projectionstate/", "rebuild", "system_status"),
        ("projections_app/projectionstate/", "repair", "system_status"),
        ("projections_app/projectionstate/", "check_drift", "system_status"),
        ("projections_app/deadletter/", "replay", operated["letter"]),
        ("projections_app/rebuildjob/", "cancel", operated["job"]),
        ("commands_app/command/", "retry_failed", operated["failed"][persona]),
    ]


@pytest.fixture
def staff(world: Any) -> None:
    get_user_model().objects.filter(username__in=NON_OPERATORS).update(is_staff=True)


@pytest.mark.parametrize("persona", NON_OPERATORS)
def test_a_refused_admin_post_leaves_nothing_behind(world, operated, staff, leaves_nothing_behind, persona):
    browser = Client(raise_request_exception=False)
    browser.force_login(get_user_model().objects.get(username=persona))
    for changelist, action, pk in _actions(operated, persona):
        with leaves_nothing_behind():
            response = browser.post(
                ADMIN + changelist, {"action": action, "_selected_action": [str(pk)]}, follow=True
            )
        assert response.status_code == 200, (changelist, action)


@pytest.mark.parametrize("persona", NON_OPERATORS)
def test_every_admin_action_asks_the_policy_itself(world, operated, staff, leaves_nothing_behind, persona):
    """Called directly, as if the admin had offered it: the service refuses, once."""
    from commands_app.models import Command
    from intent_project.admin_sites import tenant_admin_site
    from projections_app.models import DeadLetter, ProjectionState, RebuildJob

    models = {
        "projections_app/projectionstate/": ProjectionState,
        "projections_app/deadletter/": DeadLetter,
        "projections_app/rebuildjob/": RebuildJob,
        "commands_app/command/": Command,
    }
    for changelist, action, pk in _actions(operated, persona):
        model = models[changelist]
        request = RequestFactory().post(ADMIN + changelist)
        request.user = get_user_model().objects.get(username=persona)
        request.tenant = world.acme
        request._messages = CookieStorage(request)
        modeladmin = tenant_admin_site._registry[model]
        with leaves_nothing_behind(), schema_context(world.acme.schema_name):
            getattr(modeladmin, action)(request, model.objects.filter(pk=pk))
        # vera may not see the command at all: to her it answers as a missing one
        hidden = (persona, action) == ("vera", "retry_failed")
        expected = f"No command {pk} in this tenant." if hidden else REFUSED
        (message,) = [str(m) for m in request._messages]
        assert message.endswith(expected), action


def test_an_operator_resumes_from_the_admin_and_a_wake_up_is_queued(
    world, operated, django_capture_on_commit_callbacks
):
    from projections_app.models import ProjectionState

    browser = Client(raise_request_exception=False)
    browser.force_login(world["ada"].user)
    with django_capture_on_commit_callbacks() as queued:
        browser.post(
            ADMIN + "projections_app/projectionstate/",
            {"action": "resume", "_selected_action": ["system_status"]},
            follow=True,
        )

    # The wake-up, and the audit line that says ada resumed it.
    assert len(queued) == 2
    audit = next(
        callback for callback in queued if getattr(callback, "func", None) is lifecycle.operator_action
    )
    assert audit.args == ("resume",) and audit.keywords["operator"] == "ada"
    with schema_context(world.acme.schema_name):
        assert ProjectionState.objects.get(name="system_status").status == "running"


# --- the tenant admin's object-page buttons ---------------------------------------------------------
def _buttons(operated: dict[str, Any], persona: str) -> list[str]:
    """The URL of every operator button on an object's page (ObjectActionsAdmin)."""
    state = ADMIN + "projections_app/projectionstate/system_status/do/"
    return [
        *(state + action + "/" for action in ("resume", "skip", "rebuild", "check-drift", "repair")),
        ADMIN + f"commands_app/command/{operated['failed'][persona]}/do/retry/",
    ]


@pytest.mark.parametrize("persona", NON_OPERATORS)
def test_a_refused_object_page_button_answers_403_and_leaves_nothing_behind(
    world, operated, staff, leaves_nothing_behind, persona
):
    browser = Client(raise_request_exception=False)
    browser.force_login(get_user_model().objects.get(username=persona))
    page = browser.get(ADMIN + "projections_app/projectionstate/system_status/change/")
    assert page.status_code == 200 and b'data-action="' not in page.content  # no button offered
    for url in _buttons(operated, persona):
        with leaves_nothing_behind():
            response = browser.post(url)
        # vera may not see the command: to her it is missing (the admin's redirect home)
        hidden = persona == "vera" and "/command/" in url
        assert response.status_code == (302 if hidden else 403), url


def test_an_operator_gets_the_buttons_and_a_confirmation_before_a_destructive_one(world, operated):
    from projections_app.models import ProjectionState

    browser = Client(raise_request_exception=False)
    browser.force_login(world["ada"].user)
    page = browser.get(ADMIN + "projections_app/projectionstate/system_status/change/").content.decode()
    for action in ("resume", "skip", "rebuild", "check-drift", "repair"):
        assert f'data-action="{action}"' in page, action
    confirm = browser.get(ADMIN + "projections_app/projectionstate/system_status/do/skip/")
    assert confirm.status_code == 200 and b"dead letter" in confirm.content
    with schema_context(world.acme.schema_name):
        assert ProjectionState.objects.get(name="system_status").status == "stalled"  # a GET did nothing

    done = browser.post(ADMIN + "projections_app/projectionstate/system_status/do/resume/", follow=True)

    assert [str(m) for m in done.context["messages"]] == ["Resumed: 1 done."]
    with schema_context(world.acme.schema_name):
        assert ProjectionState.objects.get(name="system_status").status == "running"
    page = browser.get(ADMIN + "projections_app/projectionstate/system_status/change/").content.decode()
    assert 'data-action="resume"' not in page and 'data-action="skip"' not in page  # nothing to resume


def test_an_operator_retries_a_failed_command_from_its_page(world, operated):
    command_id = operated["failed"]["vera"]  # simulateFailure, sent by ada
    browser = Client(raise_request_exception=False)
    browser.force_login(world["ada"].user)
    page = browser.get(ADMIN + f"commands_app/command/{command_id}/change/").content.decode()
    assert 'data-action="retry"' in page
    assert browser.get(ADMIN + f"commands_app/command/{command_id}/do/retry/").status_code == 405  # POST only

    done = browser.post(ADMIN + f"commands_app/command/{command_id}/do/retry/", follow=True)

    assert [str(m) for m in done.context["messages"]] == ["Retried (sent again): 1 done."]
    assert stored_command(world.acme, command_id).status == "pending"


@pytest.mark.parametrize("action", ["skip", "rebuild", "repair"])
def test_a_destructive_list_action_asks_first_and_runs_only_when_confirmed(
    world, operated, leaves_nothing_behind, django_capture_on_commit_callbacks, action
):
    browser = Client(raise_request_exception=False)
    browser.force_login(world["ada"].user)
    chosen = {"action": action, "_selected_action": ["system_status"]}
    with leaves_nothing_behind():
        asked = browser.post(ADMIN + "projections_app/projectionstate/", chosen)
    assert asked.status_code == 200 and b'name="post" value="yes"' in asked.content

    with django_capture_on_commit_callbacks() as queued:
        done = browser.post(
            ADMIN + "projections_app/projectionstate/", {**chosen, "post": "yes"}, follow=True
        )

    assert done.status_code == 200 and queued, "the confirmed action queued nothing"
