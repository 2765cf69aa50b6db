"""Small helpers shared by the API tests: clients, the one error shape, in-process processing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

TOKEN_URL = "/api/auth/token/"
USERS_URL = "/api/users/"
TENANTS_URL = "/api/tenants/"
REGISTRY_URL = "/api/registry/"


def members_url(slug: str) -> str:
    return f"/api/tenants/{slug}/members/"


def commands_url(tenant: str = "acme") -> str:
    return f"/t/{tenant}/api/commands/"


def command_url(command_id: Any, tenant: str = "acme") -> str:
    return f"/t/{tenant}/api/commands/{command_id}/"


def events_url(tenant: str = "acme") -> str:
    return f"/t/{tenant}/api/events/"


def read_model_url(name: str, key: str | None = None, tenant: str = "acme") -> str:
    return f"/t/{tenant}/api/read-models/{name}/" + (f"{key}/" if key is not None else "")


def projections_url(tenant: str = "acme") -> str:
    return f"/t/{tenant}/api/projections/"


# --- clients ---------------------------------------------------------------------------------
def client_for(persona: Any = None) -> APIClient:
    """A DRF client (authenticated as `persona`, or anonymous) that answers a server error
    with the 500 response a user would see instead of raising it into the test."""
    client = persona.client() if persona is not None else APIClient()
    client.raise_request_exception = False
    return client


def post_json(client: APIClient, url: str, raw: str | bytes) -> Any:
    """POST a body exactly as given (for JSON the test client's encoder cannot produce)."""
    return client.post(url, raw, content_type="application/json")


def send(client: APIClient, type_name: Any, payload: Any, tenant: str = "acme", **envelope: Any) -> Any:
    return client.post(
        commands_url(tenant), {"type": type_name, "payload": payload, **envelope}, format="json"
    )


# --- payloads --------------------------------------------------------------------------------
def execute_test(
    system_id: uuid.UUID | None = None, result: str | None = None, name: str = "smoke"
) -> dict[str, Any]:
    payload: dict[str, Any] = {"testId": str(uuid.uuid4()), "testName": name}
    if system_id is not None:
        payload["systemId"] = str(system_id)
    if result is not None:
        payload["parameters"] = {"expectedResult": result}
    return payload


# --- the error shape -------------------------------------------------------------------------
def _shown(response: Any) -> Any:
    try:
        return response.json()
    except Exception:
        return response.content[:300]


def _assert_error_shape(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, _shown(response))
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return error


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape, with the request id the response header carries. Returns `error`."""
    error = _assert_error_shape(response, status, code)
    assert error.get("request_id") == response["X-Request-ID"], error
    return error


def assert_tenant_not_found(response: Any) -> dict[str, Any]:
    """404 tenant_not_found from the tenant middleware (answered before any view runs)."""
    return assert_error(response, 404, "tenant_not_found")


def assert_field_error(response: Any, status: int, code: str, field: str) -> dict[str, Any]:
    error = assert_error(response, status, code)
    assert field in error["details"].get("fields", {}), error
    return error


# --- rows in a tenant schema -----------------------------------------------------------------
def command_count(tenant: Any) -> int:
    from commands_app.models import Command

    with schema_context(tenant.schema_name):
        return Command.objects.count()


@contextmanager
def stores_no_command(tenant: Any) -> Iterator[None]:
    """The block's request was rejected: the tenant's command table must not have grown."""
    before = command_count(tenant)
    yield
    assert command_count(tenant) == before, "a rejected request stored a command"


def stored_command(tenant: Any, command_id: Any) -> Any:
    from commands_app.models import Command

    with schema_context(tenant.schema_name):
        return Command.objects.filter(pk=command_id).first()


def head_position(tenant: Any) -> int:
    from projections_app.runner import head_position as head

    with schema_context(tenant.schema_name):
        return head()


def process(tenant: Any, command_id: Any) -> str:
    """Run the real command processing in-process (its on_commit wake-ups never fire here)."""
    from commands_app import processing

    with schema_context(tenant.schema_name):
        return processing.process(uuid.UUID(str(command_id)))


def project(tenant: Any) -> None:
    """Bring the tenant's projections up to date in-process."""
    from projections_app.runner import run_all

    with schema_context(tenant.schema_name):
        run_all()


def submit_and_process(client: APIClient, type_name: str, payload: Any, tenant: Any) -> dict[str, Any]:
    response = send(client, type_name, payload, tenant=tenant.slug)
    assert response.status_code == 202, _shown(response)
    command = response.json()
    process(tenant, command["id"])
    return command


def schema_exists(schema_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [schema_name])
        return cursor.fetchone() is not None


def funded_account(client: APIClient, tenant: Any, *deposits: int) -> str:
    """Open an EUR account through the API, deposit each amount, project; return its id."""
    account = str(uuid.uuid4())
    submit_and_process(
        client, "openAccount", {"accountId": account, "owner": "Ann", "currency": "EUR"}, tenant
    )
    for amount in deposits:
        submit_and_process(client, "depositMoney", {"accountId": account, "amount": amount}, tenant)
    project(tenant)
    return account
