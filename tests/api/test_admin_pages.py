"""The tenant admin's own pages: Send a command, Live events, Dashboard.

Who may: staff members of the tenant. Sending offers only the types the member's role may
send (internal ones never) and goes through the bus as the API does; a refused or invalid
send stores nothing. The live page and the dashboard show only what the role may read."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from tests.api.helpers import stored_command, stores_no_command

ADMIN = "/t/acme/admin/"


def _browser(user) -> Client:
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    return browser


@pytest.fixture
def vera_staff(world):
    """vera (viewer: sends nothing, reads only what is hers) with staff status."""
    get_user_model().objects.filter(username="vera").update(is_staff=True)
    return _browser(get_user_model().objects.get(username="vera"))


def _transfer() -> dict[str, str]:
    return {
        "transferId": str(uuid.uuid4()),
        "fromAccountId": str(uuid.uuid4()),
        "toAccountId": str(uuid.uuid4()),
        "amount": "1250",
        "currency": "",
    }


def test_the_send_page_lists_what_the_role_may_send_and_never_an_internal_command(world):
    page = _browser(world["ada"].user).get(ADMIN + "send/").content.decode()

    assert "transferMoney" in page and "executeTest" in page
    assert "debitAccountForTransfer" not in page and "markTransferCompleted" not in page


def test_the_form_comes_from_the_payload_schema(world):
    page = _browser(world["ada"].user).get(ADMIN + "send/transferMoney/").content.decode()

    assert 'name="transferId"' in page and 'data-uuid-for="id_transferId"' in page  # a uuid button
    assert 'name="amount"' in page and 'min="1"' in page  # exclusiveMinimum 0
    assert 'name="currency"' in page and "^[A-Z]{3}$" in page  # optional, with its pattern as help


def test_a_staff_admin_sends_a_command_through_the_bus_and_lands_on_its_page(world):
    with schema_context(world.acme.schema_name):
        from commands_app.models import Command

        before = set(Command.objects.values_list("pk", flat=True))
    response = _browser(world["ada"].user).post(ADMIN + "send/transferMoney/", _transfer())

    with schema_context(world.acme.schema_name):
        (new,) = set(Command.objects.values_list("pk", flat=True)) - before
    assert response.status_code == 302 and response.url.endswith(f"commands_app/command/{new}/change/")
    command = stored_command(world.acme, new)
    assert (command.type, command.status, command.payload["amount"]) == ("transferMoney", "pending", 1250)
    assert "currency" not in command.payload  # an empty optional field is left out, not sent as null
    assert (command.metadata["source"], command.metadata["username"]) == ("admin", "ada")


def test_an_invalid_form_says_why_per_field_and_stores_nothing(world):
    bad = {**_transfer(), "amount": "0", "fromAccountId": "not-a-uuid", "currency": "eur"}

    with stores_no_command(world.acme):
        response = _browser(world["ada"].user).post(ADMIN + "send/transferMoney/", bad)

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"amount", "fromAccountId", "currency"}


def test_what_only_the_bus_refuses_shows_on_its_field_and_stores_nothing(world):
    """`parameters` is any JSON to the form; the payload schema wants an object."""
    payload = {"testId": str(uuid.uuid4()), "testName": "bus", "parameters": "[1, 2]"}

    with stores_no_command(world.acme):
        response = _browser(world["ada"].user).post(ADMIN + "send/executeTest/", payload)

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["parameters"]


@pytest.mark.parametrize("type_name", ["debitAccountForTransfer", "noSuchCommand"])
def test_an_internal_or_unknown_type_is_refused_and_nothing_is_stored(world, type_name):
    browser = _browser(world["ada"].user)

    with stores_no_command(world.acme):
        assert browser.get(ADMIN + f"send/{type_name}/").status_code == 403
        assert browser.post(ADMIN + f"send/{type_name}/", {"accountId": str(uuid.uuid4())}).status_code == 403


def test_a_role_that_may_send_nothing_gets_no_form_and_a_post_stores_nothing(world, vera_staff):
    assert "may not send any command" in vera_staff.get(ADMIN + "send/").content.decode()

    with stores_no_command(world.acme):
        assert vera_staff.post(ADMIN + "send/transferMoney/", _transfer()).status_code == 403


@pytest.mark.parametrize("page", ["send/", "send/transferMoney/", "live/", "dashboard/"])
def test_staff_without_a_membership_are_sent_to_the_login(world, page):
    with stores_no_command(world.acme):
        response = _browser(world["stan"].user).post(ADMIN + page, _transfer())

    assert response.status_code == 302 and "/login/" in response.url


def test_the_dashboard_and_live_page_show_only_what_the_role_may_read(world, vera_staff):
    ada = _browser(world["ada"].user)
    ada.post(ADMIN + "send/executeTest/", {"testId": str(uuid.uuid4()), "testName": "dash"})

    mine = ada.get(ADMIN + "dashboard/")
    hers = vera_staff.get(ADMIN + "dashboard/")
    live = vera_staff.get(ADMIN + "live/")

    assert mine.status_code == hers.status_code == live.status_code == 200
    waiting = lambda response: response.context["totals"]["pending"]  # noqa: E731
    assert waiting(mine) >= 1 and waiting(hers) == 0  # ada's command is not vera's to see
    assert b"<svg" in mine.content and b"intent-chart" in mine.content
    assert b'data-stream="/t/acme/api/events/stream/?after=' in live.content
