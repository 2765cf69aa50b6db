"""The HTTPS settings README documents for production, as a client sees them: behind the
TLS proxy, plain HTTP is redirected (the health probe excepted), HTTPS answers carry HSTS,
and the session and CSRF cookies are Secure."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def production_https(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    return Client(raise_request_exception=False)  # a new client loads the middleware anew


def test_plain_http_is_redirected_to_https(production_https):
    response = production_https.get("/api/registry/")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/registry/"


def test_the_health_probe_is_answered_over_plain_http(production_https):
    assert production_https.get("/health/").status_code == 200


def test_an_https_answer_carries_hsts(production_https):
    response = production_https.get("/health/", HTTP_X_FORWARDED_PROTO="https")

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_the_admin_login_sets_secure_cookies_only(world, production_https):
    page = production_https.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert page.status_code == 200
    assert page.cookies["csrftoken"]["secure"] is True
    login = production_https.post(
        "/admin/login/",
        {
            "username": "root",
            "password": world["root"].password,
            "csrfmiddlewaretoken": page.cookies["csrftoken"].value,
        },
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert login.status_code == 302, login.content[:300]
    assert login.cookies["sessionid"]["secure"] is True
