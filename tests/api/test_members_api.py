"""/api/tenants/<slug>/members/: platform operators and the tenant's admins grant roles; the
role is what the tenant API then enforces. The full attack matrix: test_platform_access.py."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from knox.models import AuthToken

from intent_project.tenants.models import Membership
from intent_project.tenants.services import set_membership
from tests.api.helpers import (
    assert_error,
    assert_field_error,
    client_for,
    commands_url,
    execute_test,
    members_url,
    send,
)


def role_of(username: str, tenant) -> str | None:
    return (
        Membership.objects.filter(user__username=username, tenant=tenant)
        .values_list("role", flat=True)
        .first()
    )


def test_a_platform_operator_adds_a_member_who_can_then_read_the_tenant(world):
    response = client_for(world["opal"]).post(
        members_url("acme"), {"username": "bob", "role": "viewer"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["username"] == "bob" and response.json()["role"] == "viewer"
    bob = client_for(world["bob"])
    assert bob.get(commands_url("acme")).status_code == 200
    assert_error(send(bob, "logMessage", {"message": "hi"}), 403, "forbidden")


def test_the_tenant_admin_changes_a_role_and_the_new_role_applies_at_once(world):
    alice = client_for(world["alice"])
    assert_error(send(alice, "executeRetryableTest", execute_test()), 403, "forbidden")

    response = client_for(world["ada"]).post(
        members_url("acme"), {"username": "alice", "role": "developer"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["role"] == "developer"
    assert send(alice, "executeRetryableTest", execute_test()).status_code == 202


def test_a_tenant_admin_who_is_not_staff_manages_only_their_own_tenant(world):
    owner = get_user_model().objects.create_user("olga", password="olga-password-123")
    set_membership(owner, world.acme, "admin")
    olga = client_for()
    olga.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=owner)[1]}")

    assert (
        olga.post(members_url("acme"), {"username": "bob", "role": "tester"}, format="json").status_code
        == 201
    )
    assert_error(
        olga.post(members_url("globex"), {"username": "dave", "role": "tester"}, format="json"),
        403,
        "permission_denied",
    )
    assert role_of("dave", world.globex) is None


def test_a_tester_cannot_manage_members(world):
    response = client_for(world["alice"]).post(
        members_url("acme"), {"username": "alice", "role": "admin"}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert role_of("alice", world.acme) == "tester"


def test_a_tester_cannot_list_members(world):
    assert_error(client_for(world["alice"]).get(members_url("acme")), 403, "permission_denied")


def test_the_tenant_admin_lists_members_with_their_roles(world):
    response = client_for(world["ada"]).get(members_url("acme"))

    assert response.status_code == 200
    members = {m["username"]: m["role"] for m in response.json()}
    assert {
        "alice": "tester",
        "dave": "developer",
        "sam": "system",
        "vera": "viewer",
        "ada": "admin",
    }.items() <= members.items()
    assert "bob" not in members


def test_it_refuses_an_unknown_role(world):
    response = client_for(world["ada"]).post(
        members_url("acme"), {"username": "bob", "role": "owner"}, format="json"
    )

    assert_field_error(response, 400, "validation_error", "role")
    assert role_of("bob", world.acme) is None


def test_it_refuses_an_unknown_user(world):
    response = client_for(world["ada"]).post(
        members_url("acme"), {"username": "nobody", "role": "viewer"}, format="json"
    )

    assert_field_error(response, 400, "validation_error", "username")
    assert not Membership.objects.filter(tenant=world.acme, user__username="nobody").exists()


def test_it_answers_an_unknown_tenant_with_404(world):
    response = client_for(world["opal"]).post(
        members_url("nope"), {"username": "bob", "role": "viewer"}, format="json"
    )

    assert_error(response, 404, "tenant_not_found")


def test_the_public_schema_has_no_members_endpoint(world):
    assert_error(client_for(world["root"]).get(members_url("public")), 404, "tenant_not_found")


def test_an_anonymous_caller_cannot_manage_members(world):
    response = client_for().post(members_url("acme"), {"username": "bob", "role": "admin"}, format="json")

    assert_error(response, 401, "not_authenticated")
    assert role_of("bob", world.acme) is None
