"""A suspended tenant reads but takes no commands: the API and the admin refuse to send or
retry with `tenant_suspended` and store nothing; lifting the suspension lets them again."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from intent_project.tenants.models import Tenant
from tests.api.helpers import (
    assert_error,
    client_for,
    command_url,
    execute_test,
    read_model_url,
    send,
    stored_command,
    stores_no_command,
)


@pytest.fixture
def suspended(world):
    Tenant.objects.filter(pk=world.acme.pk).update(suspended=True)
    yield world.acme
    Tenant.objects.filter(pk=world.acme.pk).update(suspended=False)


@pytest.fixture(autouse=True)
def _no_tenant_cache(settings):
    settings.TENANT_CACHE_SECONDS = 0  # each request sees the row as it is now


def test_the_api_refuses_a_command_but_answers_reads(world, suspended):
    with stores_no_command(world.acme):
        response = send(client_for(world["dave"]), "executeTest", execute_test())

    assert "suspended" in assert_error(response, 409, "tenant_suspended")["message"]
    assert client_for(world["dave"]).get(read_model_url("system_status")).status_code == 200


def test_a_retry_is_refused_too(world, suspended):
    from django_tenants.utils import schema_context

    from commands_app.models import Command

    with schema_context(world.acme.schema_name):
        failed = Command.objects.create(
            type="simulateFailure", payload={}, body_hash="x", status="failed", metadata={"user_id": "0"}
        )

    assert_error(client_for(world["ada"]).post(command_url(failed.pk) + "retry/"), 409, "tenant_suspended")
    assert stored_command(world.acme, failed.pk).status == "failed"


def test_the_admin_send_page_refuses_and_stores_nothing(world, suspended):
    browser = Client(raise_request_exception=False)
    browser.force_login(world["ada"].user)

    with stores_no_command(world.acme):
        response = browser.post(
            "/t/acme/admin/send/executeTest/", {"testId": str(uuid.uuid4()), "testName": "x"}
        )

    assert response.status_code == 400 and b"tenant_suspended" in response.content


def test_lifting_the_suspension_takes_commands_again(world, suspended):
    Tenant.objects.filter(pk=world.acme.pk).update(suspended=False)

    assert send(client_for(world["dave"]), "executeTest", execute_test()).status_code == 202
