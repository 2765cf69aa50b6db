"""POST /api/users/: superusers and holders of auth.add_user create users; staff alone may not."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.api.helpers import TOKEN_URL, USERS_URL, assert_error, assert_field_error, client_for

User = get_user_model()
NEW_USER = {"username": "nina", "password": "nina-password-123", "email": "nina@example.com"}


def test_a_platform_operator_creates_a_user_who_can_then_log_in(world):
    response = client_for(world["opal"]).post(USERS_URL, NEW_USER, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "nina" and body["email"] == "nina@example.com" and body["is_staff"] is False
    assert "password" not in body
    token = client_for().post(TOKEN_URL, {"username": "nina", "password": "nina-password-123"}, format="json")
    assert token.status_code == 200 and token.json()["token"]


def test_only_a_superuser_may_create_a_staff_user(world):
    refused = client_for(world["opal"]).post(USERS_URL, {**NEW_USER, "is_staff": True}, format="json")
    assert_error(refused, 403, "superuser_only")
    assert not User.objects.filter(username="nina").exists()

    response = client_for(world["root"]).post(USERS_URL, {**NEW_USER, "is_staff": True}, format="json")
    assert response.status_code == 201
    assert User.objects.get(username="nina").is_staff


@pytest.mark.parametrize("name", ["alice", "ada", "stan"])
def test_members_and_staff_without_the_permission_cannot_create_users(world, name):
    response = client_for(world[name]).post(USERS_URL, NEW_USER, format="json")

    assert_error(response, 403, "permission_denied")
    assert not User.objects.filter(username="nina").exists()


def test_an_anonymous_caller_cannot_create_a_user(world):
    assert_error(client_for().post(USERS_URL, NEW_USER, format="json"), 401, "not_authenticated")
    assert not User.objects.filter(username="nina").exists()


def test_it_refuses_a_username_that_is_taken(world):
    response = client_for(world["opal"]).post(USERS_URL, {**NEW_USER, "username": "alice"}, format="json")

    assert_error(response, 409, "user_exists")
    assert User.objects.get(username="alice").check_password(world["alice"].password)


def test_it_refuses_a_weak_password(world):
    response = client_for(world["opal"]).post(USERS_URL, {**NEW_USER, "password": "short"}, format="json")

    assert_field_error(response, 400, "validation_error", "password")
    assert not User.objects.filter(username="nina").exists()


def test_it_refuses_a_username_with_spaces(world):
    response = client_for(world["opal"]).post(
        USERS_URL, {**NEW_USER, "username": "nina smith"}, format="json"
    )

    assert_field_error(response, 400, "validation_error", "username")


def test_it_refuses_an_invalid_email(world):
    response = client_for(world["opal"]).post(USERS_URL, {**NEW_USER, "email": "not-an-email"}, format="json")

    assert_field_error(response, 400, "validation_error", "email")
    assert not User.objects.filter(username="nina").exists()


@pytest.mark.parametrize(
    ("username", "password"),
    [("nina", "12345678"), ("nina", "password1"), ("ninasmith", "ninasmith1"), ("nina", "8442917305")],
)
def test_it_refuses_passwords_the_default_validators_refuse(world, username, password):
    response = client_for(world["root"]).post(
        USERS_URL, {"username": username, "password": password}, format="json"
    )

    assert_field_error(response, 400, "validation_error", "password")
    assert not User.objects.filter(username=username).exists()


def test_the_platform_admin_refuses_a_common_password_too(world):
    admin = Client()
    admin.force_login(world["root"].user)

    page = admin.post(
        "/admin/auth/user/add/",
        {"username": "nina", "password1": "12345678", "password2": "12345678", "usable_password": "true"},
    )

    assert page.status_code == 200 and b"too common" in page.content
    assert not User.objects.filter(username="nina").exists()
