"""Where a new user lands: `/` and `/t/<tenant>/` lead somewhere (links for API clients, a
page for browsers), and every link they give answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.helpers import assert_tenant_not_found, client_for

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ORIGIN = "http://testserver"


def _links(body: dict[str, Any]) -> list[str]:
    """Every link of an entry-points body, URI templates left out."""
    found: list[str] = []
    for value in body["links"].values():
        found.extend(value.values() if isinstance(value, dict) else [value])
    return [link for link in found if "{" not in link]


@pytest.mark.parametrize("path", ["/", "/api/"])
def test_the_root_lists_the_entry_points_for_an_api_client(world, path):
    response = client_for().get(path, HTTP_ACCEPT="*/*")

    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body["links"]) == {
        "docs",
        "schema",
        "registry",
        "tenants",
        "tenant_api",
        "health",
        "ready",
        "admin",
    }
    assert body["links"]["docs"] == f"{ORIGIN}/api/docs/"
    assert body["links"]["registry"] == f"{ORIGIN}/api/registry/"
    assert body["links"]["tenant_api"] == f"{ORIGIN}/t/{{tenant}}/api/"
    assert body["authentication"]["token"] == f"{ORIGIN}/api/auth/token/"
    assert "Bearer" in body["authentication"]["header"] and "Token" in body["authentication"]["header"]


def test_a_browser_asking_for_the_root_is_sent_to_the_api_docs(world):
    response = client_for().get("/", HTTP_ACCEPT=BROWSER)

    assert response.status_code == 302
    assert response["Location"] == "/api/docs/"
    assert "Accept" in response["Vary"]  # a cache must not hand the redirect to an API client


def test_every_link_of_the_root_answers(world):
    client = client_for(world["root"])
    links = _links(client.get("/").json())

    assert len(links) == 7  # all but the tenant_api template
    for link in links:
        response = client.get(link.removeprefix(ORIGIN))
        # /ready/ is 503 without a live worker here (an answer about readiness all the same);
        # the admin sends a token holder to its login page.
        answers = {302} if link.endswith("/admin/") else {200, 503}
        assert response.status_code in answers, (link, response.status_code)


@pytest.mark.parametrize("path", ["/t/acme/", "/t/acme/api/"])
def test_a_tenant_root_lists_the_tenants_entry_points(world, path):
    response = client_for().get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == "acme"
    links = body["links"]
    assert links["commands"] == f"{ORIGIN}/t/acme/api/commands/"
    assert links["traces"] == f"{ORIGIN}/t/acme/api/traces/{{correlation_id}}/"
    assert links["read_models"]["transfers"] == f"{ORIGIN}/t/acme/api/read-models/transfers/"
    assert links["admin"] == f"{ORIGIN}/t/acme/admin/"
    assert links["registry"] == f"{ORIGIN}/api/registry/"


def test_every_link_of_a_tenant_root_answers_its_admin(world):
    client = client_for(world["ada"])
    links = _links(client.get("/t/acme/").json())

    assert len(links) == 12  # commands, events, 6 read models, projections, admin, registry, docs
    for link in links:
        response = client.get(link.removeprefix(ORIGIN))
        assert response.status_code in (200, 302), (link, response.status_code)  # 302: admin login


def test_a_browser_asking_for_a_tenant_root_is_sent_to_the_tenant_admin(world):
    response = client_for().get("/t/acme/", HTTP_ACCEPT=BROWSER)

    assert response.status_code == 302
    assert response["Location"] == "/t/acme/admin/"


def test_the_root_of_a_tenant_that_does_not_exist_is_a_404(world):
    assert_tenant_not_found(client_for().get("/t/nowhere/"))


def test_the_api_roots_are_documented_and_the_redirecting_roots_are_not(world):
    paths = json.loads(client_for().get("/api/schema/?format=json").content)["paths"]

    assert "/api/" in paths and "/t/{tenant}/api/" in paths
    assert "/" not in paths and "/t/{tenant}/" not in paths
