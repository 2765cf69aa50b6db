"""POST /api/auth/token/ and how the tenant API answers missing or bad credentials."""

from __future__ import annotations

import uuid

import pytest
import structlog
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from intent_project.api.authentication import TokenAuthentication
from intent_project.tenants.models import Membership
from tests.api.helpers import (
    TENANTS_URL,
    TOKEN_URL,
    assert_error,
    assert_field_error,
    client_for,
    commands_url,
    post_json,
)


def _with_header(value: str):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def test_it_issues_a_token_that_then_authenticates_the_user(world):
    dave = world["dave"]
    response = client_for().post(TOKEN_URL, {"username": "dave", "password": dave.password}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    assert token != dave.token  # every login is a new token (tests/api/test_tokens.py)
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    tenants = client.get(TENANTS_URL)
    assert tenants.status_code == 200
    assert [t["slug"] for t in tenants.json()] == ["acme"]


def test_it_answers_a_wrong_password_and_an_unknown_user_alike(world):
    wrong = client_for().post(TOKEN_URL, {"username": "dave", "password": "not-his-password"}, format="json")
    unknown = client_for().post(TOKEN_URL, {"username": "nobody", "password": "whatever-123"}, format="json")

    assert (
        assert_error(wrong, 400, "invalid_credentials")["message"]
        == assert_error(unknown, 400, "invalid_credentials")["message"]
    )
    assert "token" not in wrong.json()


def test_it_gives_an_inactive_user_no_token(world):
    get_user_model().objects.create_user("gone", password="gone-password-123", is_active=False)

    response = client_for().post(
        TOKEN_URL, {"username": "gone", "password": "gone-password-123"}, format="json"
    )

    assert_error(response, 400, "invalid_credentials")


def test_it_rejects_malformed_json(world):
    assert_error(post_json(client_for(), TOKEN_URL, '{"username": "dave",'), 400, "malformed_request")


def test_it_names_every_missing_field(world):
    error = assert_error(client_for().post(TOKEN_URL, {}, format="json"), 400, "validation_error")

    assert set(error["details"]["fields"]) == {"username", "password"}


def test_it_names_a_blank_password(world):
    assert_field_error(
        client_for().post(TOKEN_URL, {"username": "dave", "password": ""}, format="json"),
        400,
        "validation_error",
        "password",
    )


def test_it_refuses_form_encoded_credentials(world):
    response = client_for().post(TOKEN_URL, {"username": "dave", "password": world["dave"].password})

    assert_error(response, 415, "unsupported_media_type")


def test_it_only_accepts_post(world):
    assert_error(client_for().get(TOKEN_URL), 405, "method_not_allowed")


def test_it_asks_for_credentials_when_none_are_sent(world):
    response = client_for().get(TENANTS_URL)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")


def test_it_rejects_an_unknown_token(world):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")

    assert_error(client.get(TENANTS_URL), 401, "authentication_failed")


def test_it_keeps_the_client_request_id_in_errors(world):
    response = client_for().post(TOKEN_URL, {}, format="json", HTTP_X_REQUEST_ID="trace-42.a")

    assert response["X-Request-ID"] == "trace-42.a"
    assert assert_error(response, 400, "validation_error")["request_id"] == "trace-42.a"


def test_it_replaces_an_unusable_client_request_id(world):
    response = client_for().post(TOKEN_URL, {}, format="json", HTTP_X_REQUEST_ID="bad id; <script>")

    assert response["X-Request-ID"] != "bad id; <script>"
    assert_error(response, 400, "validation_error")


# --- schemes: Token and Bearer ---------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer", "TOKEN"])
def test_a_token_is_accepted_in_either_scheme(world, scheme):
    response = _with_header(f"{scheme} {world['dave'].token}").get(commands_url())

    assert response.status_code == 200, response.json()


def test_a_bearer_token_is_still_checked_against_its_digest(world):
    tampered = world["dave"].token[:-1] + ("0" if world["dave"].token[-1] != "0" else "1")

    assert_error(_with_header(f"Bearer {tampered}").get(commands_url()), 401, "authentication_failed")


def test_logging_out_with_a_bearer_token_revokes_it(world):
    _, token = AuthToken.objects.create(user=world["dave"].user)
    client = _with_header(f"Bearer {token}")

    assert client.post("/api/auth/logout/").status_code == 204
    assert_error(client.get(commands_url()), 401, "authentication_failed")


@pytest.mark.parametrize("header", ["Basic ZGF2ZTp4", "JWT abc.def.ghi", "Tokenabc"])
def test_another_scheme_is_refused_naming_the_accepted_ones(world, header):
    response = _with_header(header).get(commands_url())

    error = assert_error(response, 401, "authentication_failed")
    assert "Authorization: Token <token>" in error["message"]
    assert "Authorization: Bearer <token>" in error["message"]
    assert response["WWW-Authenticate"] == "Token, Bearer"


@pytest.mark.parametrize("header", ["Bearer", "Bearer two parts", "Token caf\u00e9"])
def test_a_malformed_token_header_is_a_401_not_a_500(world, header):
    assert_error(_with_header(header).get(commands_url()), 401, "authentication_failed")


def test_a_token_request_binds_its_user_for_the_lines_it_logs(world):
    request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {world['alice'].token}"))
    structlog.contextvars.clear_contextvars()
    try:
        user, _ = TokenAuthentication().authenticate(request)
        assert structlog.contextvars.get_contextvars()["user"] == user.get_username() == "alice"
    finally:
        structlog.contextvars.clear_contextvars()


def test_a_tenant_request_reads_token_user_and_role_in_one_statement(world):
    """The authentication joins the membership of the path's tenant; the permission check
    uses that role instead of a query of its own (issue 18: a round trip per request)."""
    client = client_for(world["dave"])
    with CaptureQueriesContext(connection) as captured:
        response = client.get(commands_url() + "?limit=1")
    assert response.status_code == 200
    auth = [q["sql"] for q in captured.captured_queries if "knox_authtoken" in q["sql"]]
    assert len(auth) == 1 and "tenants_membership" in auth[0]
    assert not [
        q["sql"]
        for q in captured.captured_queries
        if "tenants_membership" in q["sql"] and "knox_authtoken" not in q["sql"]
    ]


@pytest.mark.parametrize("change", ["lowered", "removed"])
def test_a_role_changed_between_two_requests_is_the_role_of_the_second(world, change):
    """The role joined into the authentication is read by every request, never kept."""
    dave = world["dave"]
    client = client_for(dave)
    body = {"type": "logMessage", "payload": {"message": "hi", "systemId": str(uuid.uuid4())}}
    assert post_json(client, commands_url(), body).status_code == 202
    membership = Membership.objects.get(user__username="dave", tenant__slug="acme")
    if change == "lowered":
        membership.role = "viewer"
        membership.save()
        refused = post_json(client, commands_url(), {**body, "payload": {**body["payload"]}})
        assert refused.status_code == 403
        assert client.get(commands_url()).status_code == 200  # a viewer still reads
    else:
        membership.delete()
        assert_error(client.get(commands_url()), 403, "not_a_member")
        assert_error(post_json(client, commands_url(), body), 403, "not_a_member")


def test_an_unknown_token_under_a_tenant_path_is_refused_and_binds_no_role(world):
    assert_error(_with_header("Token " + "0" * 64).get(commands_url()), 401, "authentication_failed")
