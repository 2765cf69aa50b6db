"""/api/tenants/: platform operators create tenants (a schema each) and list them all; everyone
else lists the tenants they belong to."""

from __future__ import annotations

import pytest

from intent_project.tenants.models import Tenant
from tests.api.helpers import (
    TENANTS_URL,
    assert_error,
    assert_field_error,
    client_for,
    members_url,
    projections_url,
    schema_exists,
)


def test_a_platform_operator_creates_a_tenant_with_its_own_schema_that_members_can_use(world):
    opal = client_for(world["opal"])

    response = opal.post(TENANTS_URL, {"slug": "initech", "name": "Initech"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["slug"], body["name"], body["schema_name"]) == ("initech", "Initech", "t_initech")
    assert body["api_url"].endswith("/t/initech/api/")
    assert schema_exists("t_initech")
    assert (
        opal.post(members_url("initech"), {"username": "dave", "role": "viewer"}, format="json").status_code
        == 201
    )
    projections = client_for(world["dave"]).get(projections_url("initech"))
    assert projections.status_code == 200
    listed = {p["name"]: (p["checkpoint"], p["lag"]) for p in projections.json()}
    assert listed["system_status"] == listed["system_metrics"] == listed["system_saga"] == (0, 0)


@pytest.mark.parametrize("name", ["alice", "ada", "stan"])
def test_members_and_staff_without_the_permission_cannot_create_a_tenant(world, name):
    response = client_for(world[name]).post(TENANTS_URL, {"slug": "initech"}, format="json")

    assert_error(response, 403, "permission_denied")
    assert not Tenant.objects.filter(slug="initech").exists()
    assert not schema_exists("t_initech")


@pytest.mark.parametrize(
    "slug",
    [
        "A",
        "x",
        "bad slug",
        "public",
        "api",
        "admin",
        "a'; drop",
        "ümlaut",
        "1abc",
        "a" * 41,
        "",
        "under_score",
    ],
)
def test_it_refuses_a_slug_that_cannot_name_a_schema_and_a_url(world, slug):
    before = Tenant.objects.count()

    response = client_for(world["opal"]).post(TENANTS_URL, {"slug": slug, "name": "X"}, format="json")

    assert_field_error(response, 400, "validation_error", "slug")
    assert Tenant.objects.count() == before


def test_it_refuses_a_slug_that_is_taken(world):
    response = client_for(world["opal"]).post(
        TENANTS_URL, {"slug": "acme", "name": "Another Acme"}, format="json"
    )

    assert_error(response, 409, "tenant_exists")
    assert Tenant.objects.get(slug="acme").name == "Acme"


def test_a_member_lists_only_the_tenants_they_belong_to_with_their_role(world):
    response = client_for(world["bob"]).get(TENANTS_URL)

    assert response.status_code == 200
    roles = {t["slug"]: t["role"] for t in response.json()}
    assert roles["globex"] == "developer"
    assert "acme" not in roles
    assert None not in roles.values()


def test_a_platform_operator_lists_every_tenant_but_not_the_public_schema(world):
    response = client_for(world["opal"]).get(TENANTS_URL)

    slugs = [t["slug"] for t in response.json()]
    assert {"acme", "globex"} <= set(slugs)
    assert "public" not in slugs


def test_staff_without_the_permission_list_only_their_own_tenants(world):
    roles = {t["slug"]: t["role"] for t in client_for(world["ada"]).get(TENANTS_URL).json()}

    assert roles == {"acme": "admin"}
    assert client_for(world["stan"]).get(TENANTS_URL).json() == []


def test_an_anonymous_caller_cannot_list_tenants(world):
    assert_error(client_for().get(TENANTS_URL), 401, "not_authenticated")
