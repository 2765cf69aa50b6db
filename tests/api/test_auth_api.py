"""POST /api/auth/token/ and how the tenant API answers missing or bad credentials."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from tests.api.helpers import TENANTS_URL, TOKEN_URL, assert_error, assert_field_error, client_for, post_json


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
