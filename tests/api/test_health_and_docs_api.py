"""/health/, the OpenAPI document and its Swagger page."""

from __future__ import annotations

import json
import re

import pytest

from tests.api.helpers import client_for


def test_health_reports_the_database_and_the_broker_ok(world):
    response = client_for().get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": {"ok": True}, "broker": {"ok": True}}}


def test_the_openapi_document_describes_public_and_tenant_endpoints(world):
    response = client_for().get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert {
        "/api/auth/token/",
        "/api/tenants/",
        "/t/{tenant}/api/commands/",
        "/t/{tenant}/api/events/",
    } <= set(paths)
    assert {"202", "200"} <= set(paths["/t/{tenant}/api/commands/"]["post"]["responses"])


@pytest.mark.parametrize(
    "path",
    [
        "/api/registry/",
        "/t/{tenant}/api/read-models/account_balances/",
        "/t/{tenant}/api/read-models/account_balances/{key}/",
    ],
)
def test_the_openapi_document_describes_what_each_read_endpoint_returns(world, path):
    paths = json.loads(client_for().get("/api/schema/?format=json").content)["paths"]

    assert "content" in paths[path]["get"]["responses"]["200"]


def test_the_swagger_page_renders(world):
    response = client_for().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"/api/schema/" in response.content


def test_the_swagger_page_loads_nothing_from_another_host_and_its_assets_answer(world):
    """Swagger UI's scripts, styles and icon come from the app (drf-spectacular-sidecar via
    WhiteNoise): no third-party script beside the session cookie, and docs that work offline."""
    client = client_for()
    html = client.get("/api/docs/").content.decode()

    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+", html, flags=re.IGNORECASE) == []
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_the_admin_styles_are_served_by_the_app_itself(world):
    """No collectstatic and no separate web server: WhiteNoise serves the admin's files."""
    response = client_for().get("/static/admin/css/base.css")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_the_document_describes_the_metrics_scrape_and_the_tenant_export():
    paths = json.loads(client_for().get("/api/schema/?format=json").content)["paths"]

    metrics = paths["/metrics"]["get"]
    assert metrics["operationId"] == "getMetrics" and "text/plain" in metrics["responses"]["200"]["content"]
    assert {"401", "404"} <= set(metrics["responses"])
    export = paths["/api/tenants/{slug}/export/"]["get"]
    assert export["operationId"] == "exportTenant"
    assert "application/octet-stream" in export["responses"]["200"]["content"]
    assert "403" in export["responses"]
