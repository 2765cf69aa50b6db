"""The tenant admin's data subjects page: tenant admins erase a person's data from it; every
other role finds no page, no action and no button, and a refused attempt erases nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from tests.api.helpers import client_for, send

ADMIN = "/t/acme/admin/"
PAGE = ADMIN + "events_app/subjectkey/"
NOT_ADMINS = ("dave", "bea", "vera")  # developer, banker, viewer: staff for this test


@pytest.fixture
def subject(world: Any) -> str:
    """An account opened at acme: its owner is personal data, keyed by the account id."""
    account = str(uuid.uuid4())
    answer = send(
        client_for(world["ada"]), "openAccount", {"accountId": account, "owner": "Ann", "currency": "EUR"}
    )
    assert answer.status_code == 202, answer.content
    return account


def _key(world: Any, subject: str) -> Any:
    from events_app.models import SubjectKey

    with schema_context(world.acme.schema_name):
        return SubjectKey.objects.get(subject=subject)


def _browser(persona: Any) -> Client:
    browser = Client(raise_request_exception=False)
    browser.force_login(persona.user)
    return browser


def test_a_tenant_admin_sees_the_subjects_and_never_a_key(world, subject):
    page = _browser(world["ada"]).get(PAGE).content.decode()
    assert subject in page and "kept, sealed" in page
    detail = _browser(world["ada"]).get(f"{PAGE}{subject}/change/").content.decode()
    assert 'data-action="forget"' in detail
    assert bytes(_key(world, subject).key).hex() not in detail


def test_a_tenant_admin_forgets_a_subject_after_confirming(
    world, subject, django_capture_on_commit_callbacks
):
    from commands_app.registry import get_registry
    from projections_app.registry import projections_for_event_types

    browser = _browser(world["ada"])
    asked = browser.get(f"{PAGE}{subject}/do/forget/")
    assert asked.status_code == 200 and b"cannot be undone" in asked.content
    assert _key(world, subject).key is not None  # asking changed nothing

    with django_capture_on_commit_callbacks(execute=False) as queued:
        done = browser.post(f"{PAGE}{subject}/do/forget/", follow=True)

    assert [str(m) for m in done.context["messages"]] == [
        "Erased (the read models are rebuilt on a worker): 1 done."
    ]
    key = _key(world, subject)
    assert key.key is None and key.erased_by == "ada"
    rebuilds = [
        c for c in queued if getattr(c, "func", None) is not None and "rebuild_after_erasure" in repr(c.func)
    ]
    assert sorted(c.args[1] for c in rebuilds) == sorted(
        projections_for_event_types(get_registry().personal_events)
    )
    command = client_for(world["ada"]).get("/t/acme/api/commands/", {"type": "openAccount"}).json()["results"]
    assert next(c for c in command if c["aggregate_id"] == subject)["payload"]["owner"] == "[erased]"


@pytest.mark.parametrize("persona", NOT_ADMINS)
def test_other_roles_find_no_page_no_button_and_erase_nothing(world, subject, persona):
    get_user_model().objects.filter(username=persona).update(is_staff=True)
    browser = _browser(world[persona])
    assert browser.get(PAGE).status_code == 403
    assert b"subjectkey" not in browser.get(ADMIN).content
    assert browser.post(f"{PAGE}{subject}/do/forget/").status_code in (302, 403)
    browser.post(PAGE, {"action": "forget", "_selected_action": [subject], "post": "yes"})
    assert _key(world, subject).key is not None
