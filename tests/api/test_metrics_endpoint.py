"""`GET /metrics`: Prometheus text for whoever holds METRICS_TOKEN, nobody else."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import client_for

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


def test_without_a_token_configured_there_are_no_metrics(world, settings):
    settings.METRICS_TOKEN = ""
    response = client_for().get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("token", ["", TOKEN], ids=["metrics-off", "metrics-on"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "trace", "query"])
def test_a_method_other_than_get_is_405_whether_metrics_are_on_or_not(world, settings, token, method):
    settings.METRICS_TOKEN = token
    response = client_for().generic(method.upper(), "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert b"intent_" not in response.content


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer wrong-token", f"Token {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
    ids=["none", "wrong", "other-scheme", "longer", "empty"],
)
def test_anyone_without_the_token_is_refused(world, metrics_token, authorization):
    response = client_for().get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert response.json()["error"]["code"] == "not_authenticated"
    assert b"intent_" not in response.content


def test_an_api_user_token_is_not_the_metrics_token(world, metrics_token):
    # Even a superuser's API token: the scrape token is a separate secret.
    response = client_for(world["root"]).get("/metrics")
    assert response.status_code == 401


def test_the_token_holder_gets_prometheus_text(world, metrics_token, isolated_redis):
    response = client_for().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert {s.labels["queue"] for s in families["intent_queue_depth"].samples} == {
        "commands",
        "projections",
        "sweeps",
    }
