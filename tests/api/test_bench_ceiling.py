"""The benchmarks' bare DRF view (bench/ceiling) is never part of the product, and where the
bench serves it, only a token holder may post to it."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.urls import clear_url_caches
from knox.models import AuthToken

from bench.ceiling.views import CREATE_TABLE, TABLE
from tests.api.helpers import assert_error, client_for

URL = "/bench/ceiling/"
BODY = {"type": "logMessage", "payload": {"message": "x"}}


def test_the_product_does_not_serve_the_bare_view(world):
    assert_error(client_for().post(URL, BODY, format="json"), 404, "not_found")


@pytest.fixture
def ceiling_urls(settings):
    settings.PUBLIC_SCHEMA_URLCONF = "bench.ceiling.urls"
    clear_url_caches()
    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)
    yield
    clear_url_caches()


def _rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM public.{TABLE}")
        return int(cursor.fetchone()[0])


def test_under_the_bench_settings_only_a_token_holder_may_post(world, ceiling_urls):
    anonymous = client_for()
    assert_error(anonymous.post(URL, BODY, format="json"), 401, "not_authenticated")
    bad = client_for()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "x" * 64)
    assert_error(bad.post(URL, BODY, format="json"), 401, "authentication_failed")
    assert _rows() == 0  # refused attempts leave nothing

    _, token = AuthToken.objects.create(user=world["dave"].user)
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    command_id = str(uuid.uuid4())
    response = client.post(URL, {**BODY, "id": command_id}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"id": command_id, "status": "pending"}
    assert _rows() == 1
