"""API tokens (django-rest-knox): stored hashed, expiring, revocable, shown once."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.test import Client
from knox.models import AuthToken

from tests.api.helpers import TENANTS_URL, TOKEN_URL, assert_error, client_for

LOGOUT_URL = "/api/auth/logout/"
LOGOUT_ALL_URL = "/api/auth/logout-all/"


def login(world, name="dave") -> str:
    response = client_for().post(
        TOKEN_URL, {"username": name, "password": world[name].password}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()["token"]


def with_token(token: str):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_token_is_stored_only_as_a_digest(world):
    token = login(world)

    with connection.cursor() as cursor:
        cursor.execute("SELECT digest, token_key FROM knox_authtoken")
        rows = cursor.fetchall()
    assert rows
    assert all(token not in digest for digest, _ in rows)
    assert all(len(key) == 15 for _, key in rows)  # a lookup prefix, useless on its own


def test_the_old_plain_text_token_table_is_gone(world):
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.authtoken_token')")
        assert cursor.fetchone()[0] is None


def test_a_token_expires_after_the_configured_lifetime(world):
    login(world)
    newest = AuthToken.objects.filter(user=world["dave"].user).latest("created")

    lifetime = newest.expiry - newest.created
    assert abs(lifetime - timedelta(hours=settings.TOKEN_TTL_HOURS)) < timedelta(minutes=1)


def test_an_expired_token_is_refused_and_deleted(world):
    instance, token = AuthToken.objects.create(user=world["dave"].user, expiry=timedelta(seconds=-1))

    assert_error(with_token(token).get(TENANTS_URL), 401, "authentication_failed")
    assert not AuthToken.objects.filter(pk=instance.pk).exists()


def test_logging_in_deletes_the_users_expired_tokens(world):
    expired, _ = AuthToken.objects.create(user=world["dave"].user, expiry=timedelta(seconds=-1))

    login(world)

    assert not AuthToken.objects.filter(pk=expired.pk).exists()


def test_logout_revokes_only_the_calling_token(world):
    first, second = login(world), login(world)

    assert with_token(first).post(LOGOUT_URL).status_code == 204

    assert_error(with_token(first).get(TENANTS_URL), 401, "authentication_failed")
    assert with_token(second).get(TENANTS_URL).status_code == 200


def test_logout_all_revokes_every_token_of_the_user_and_no_one_elses(world):
    first, second = login(world), login(world)

    assert with_token(first).post(LOGOUT_ALL_URL).status_code == 204

    for token in (first, second, world["dave"].token):
        assert_error(with_token(token).get(TENANTS_URL), 401, "authentication_failed")
    assert client_for(world["alice"]).get(TENANTS_URL).status_code == 200


def test_a_revoked_token_cannot_log_out_again(world):
    token = login(world)
    assert with_token(token).post(LOGOUT_URL).status_code == 204

    assert_error(with_token(token).post(LOGOUT_URL), 401, "authentication_failed")


def test_a_token_with_a_valid_prefix_but_wrong_rest_is_refused(world):
    token = login(world)
    forged = token[:15] + ("0" if token[15] != "0" else "1") + token[16:]

    assert_error(with_token(forged).get(TENANTS_URL), 401, "authentication_failed")


def test_a_deactivated_users_token_is_refused(world):
    token = login(world)
    user = world["dave"].user
    user.is_active = False
    user.save()

    assert_error(with_token(token).get(TENANTS_URL), 401, "authentication_failed")


def test_the_platform_admin_lists_tokens_without_their_secret(world):
    token = login(world)
    digest = AuthToken.objects.filter(user=world["dave"].user).latest("created").digest
    admin = Client()
    admin.force_login(world["root"].user)

    page = admin.get("/admin/knox/authtoken/")

    assert page.status_code == 200
    html = page.content.decode()
    # The digest (a one-way SHA-512) is the row's id in links; the token and its lookup
    # prefix never appear.
    assert digest
    for secret in (token, token[:15]):
        at = html.find(secret)
        assert at == -1, (secret, html[max(0, at - 300) : at + 100])
    assert "dave" in html and token[:8] in html
    assert admin.get("/admin/knox/authtoken/add/").status_code == 403


def test_staff_without_the_permission_do_not_see_tokens_in_the_platform_admin(world):
    admin = Client()
    admin.force_login(world["stan"].user)

    assert admin.get("/admin/knox/authtoken/").status_code == 403
