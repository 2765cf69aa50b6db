"""The platform endpoints x every persona: allowed or refused as README "Who may do what" says,
and a refused attempt leaves no row behind.

Personas (tests/conftest.py): anonymous; stan (staff, no permission, no membership); the
acme members alice (tester), dave (developer), sam (system), vera (viewer), bea (banker),
tom (teller); bob (developer at globex: another tenant); ada (staff + acme admin) and abe
(acme admin, not staff); opal (staff with explicit platform permissions); root (superuser).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from knox.models import AuthToken

from intent_project.tenants.models import Membership, Tenant
from intent_project.tenants.services import set_membership
from tests.api.helpers import (
    REGISTRY_URL,
    TENANTS_URL,
    TOKEN_URL,
    USERS_URL,
    assert_error,
    client_for,
    members_url,
    schema_exists,
)

User = get_user_model()

MEMBERS = ["alice", "dave", "sam", "vera", "bea", "tom"]
TENANT_ADMINS = ["ada", "abe"]
OPERATORS = ["opal", "root"]
NOBODIES = ["stan", "bob"]  # plain staff; a member of another tenant
EVERYONE = MEMBERS + TENANT_ADMINS + OPERATORS + NOBODIES
MEMBER_MANAGERS_OF_ACME = TENANT_ADMINS + OPERATORS
NOT_MANAGERS_OF_ACME = MEMBERS + NOBODIES


def member_url(slug: str, username: str) -> str:
    return f"/api/tenants/{slug}/members/{username}/"


def role_of(username: str, tenant: Any) -> str | None:
    return (
        Membership.objects.filter(user__username=username, tenant=tenant)
        .values_list("role", flat=True)
        .first()
    )


def every_member_write(
    client: Any, slug: str, actor: str, *, newcomer: str, changed: str, removed: str
) -> list[Any]:
    """The writes an attacker tries: make itself admin, add someone, promote, remove."""
    return [
        client.post(members_url(slug), {"username": actor, "role": "admin"}, format="json"),
        client.post(members_url(slug), {"username": newcomer, "role": "viewer"}, format="json"),
        client.patch(member_url(slug, changed), {"role": "admin"}, format="json"),
        client.delete(member_url(slug, removed)),
    ]


def without_request_id(response: Any) -> dict[str, Any]:
    error = dict(response.json()["error"])
    error.pop("request_id", None)
    return error


# --- tokens, registry, health: open to all ---------------------------------------------------
@pytest.mark.parametrize("name", EVERYONE)
def test_every_persona_logs_in_with_its_password(world, name):
    persona = world[name]
    response = client_for().post(TOKEN_URL, {"username": name, "password": persona.password}, format="json")

    assert response.status_code == 200
    assert len(response.json()["token"]) == 64 and response.json()["expiry"]


@pytest.mark.parametrize("name", [None, *EVERYONE])
def test_everyone_reads_the_registry_and_health(world, name):
    client = client_for(world[name] if name else None)

    assert client.get(REGISTRY_URL).status_code == 200
    assert client.get("/health/").status_code == 200


@pytest.mark.parametrize("name", EVERYONE)
def test_every_persona_revokes_its_own_tokens_and_only_those(world, name):
    fresh = client_for()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=world[name].user)[1]}")
    others = [AuthToken.objects.create(user=world[n].user)[1] for n in EVERYONE if n != name]

    assert fresh.post("/api/auth/logout-all/").status_code == 204

    assert_error(client_for(world[name]).get(TENANTS_URL), 401, "authentication_failed")
    assert AuthToken.objects.filter(user=world[name].user).count() == 0
    assert AuthToken.objects.filter(token_key__in=[t[:15] for t in others]).count() == len(others)


@pytest.mark.parametrize("path", ["/api/auth/logout/", "/api/auth/logout-all/"])
def test_an_anonymous_caller_cannot_log_out(world, path):
    assert_error(client_for().post(path), 401, "not_authenticated")


# --- users -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MEMBERS + TENANT_ADMINS + NOBODIES)
def test_only_superusers_and_holders_of_add_user_create_users(world, name):
    response = client_for(world[name]).post(
        USERS_URL, {"username": "mallory", "password": "mallory-password-123"}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.parametrize("name", OPERATORS)
def test_operators_create_users(world, name):
    response = client_for(world[name]).post(
        USERS_URL, {"username": "mallory", "password": "mallory-password-123"}, format="json"
    )

    assert response.status_code == 201
    assert not User.objects.get(username="mallory").is_staff


def test_an_anonymous_caller_cannot_create_users(world):
    response = client_for().post(
        USERS_URL, {"username": "mallory", "password": "mallory-pw-123"}, format="json"
    )

    assert_error(response, 401, "not_authenticated")
    assert not User.objects.filter(username="mallory").exists()


def test_the_api_never_makes_a_superuser(world):
    response = client_for(world["root"]).post(
        USERS_URL,
        {"username": "mallory", "password": "mallory-password-123", "is_superuser": True},
        format="json",
    )

    assert response.status_code == 201
    assert not User.objects.get(username="mallory").is_superuser


# --- tenants -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MEMBERS + TENANT_ADMINS + NOBODIES)
def test_only_superusers_and_holders_of_add_tenant_create_tenants(world, name):
    response = client_for(world[name]).post(TENANTS_URL, {"slug": "evilcorp"}, format="json")

    assert_error(response, 403, "permission_denied")
    assert not Tenant.objects.filter(slug="evilcorp").exists()
    assert not schema_exists("t_evilcorp")


def test_an_anonymous_caller_cannot_create_tenants(world):
    assert_error(
        client_for().post(TENANTS_URL, {"slug": "evilcorp"}, format="json"), 401, "not_authenticated"
    )
    assert not Tenant.objects.filter(slug="evilcorp").exists()


@pytest.mark.parametrize("name", OPERATORS)
def test_operators_list_every_tenant(world, name):
    slugs = {t["slug"] for t in client_for(world[name]).get(TENANTS_URL).json()}

    assert {"acme", "globex"} <= slugs


@pytest.mark.parametrize("name", MEMBERS + TENANT_ADMINS + NOBODIES)
def test_everyone_else_lists_only_their_own_tenants(world, name):
    response = client_for(world[name]).get(TENANTS_URL)

    assert response.status_code == 200
    own = set(Membership.objects.filter(user__username=name).values_list("tenant__slug", flat=True))
    assert {t["slug"] for t in response.json()} == own


# --- members: list, add, change, remove ---------------------------------------------------------
@pytest.mark.parametrize("name", MEMBER_MANAGERS_OF_ACME)
def test_acme_admins_and_operators_list_acme_members(world, name):
    response = client_for(world[name]).get(members_url("acme"))

    assert response.status_code == 200
    assert {m["username"] for m in response.json()} >= {"alice", "ada", "abe"}


@pytest.mark.parametrize("name", NOT_MANAGERS_OF_ACME)
def test_members_and_outsiders_cannot_list_acme_members(world, name):
    assert_error(client_for(world[name]).get(members_url("acme")), 403, "permission_denied")


@pytest.mark.parametrize("name", TENANT_ADMINS)
def test_an_acme_admin_cannot_list_or_manage_globex(world, name):
    client = client_for(world[name])

    assert_error(client.get(members_url("globex")), 403, "permission_denied")
    for response in every_member_write(
        client, "globex", name, newcomer="alice", changed="bob", removed="bob"
    ):
        assert_error(response, 403, "permission_denied")
    assert role_of(name, world.globex) is None and role_of("alice", world.globex) is None
    assert role_of("bob", world.globex) == "developer"


@pytest.mark.parametrize("name", MEMBER_MANAGERS_OF_ACME)
def test_acme_admins_and_operators_add_change_and_remove_acme_members(world, name):
    client = client_for(world[name])

    added = client.post(members_url("acme"), {"username": "bob", "role": "viewer"}, format="json")
    assert added.status_code == 201 and role_of("bob", world.acme) == "viewer"
    changed = client.patch(member_url("acme", "bob"), {"role": "teller"}, format="json")
    assert changed.status_code == 200 and role_of("bob", world.acme) == "teller"
    removed = client.delete(member_url("acme", "bob"))
    assert removed.status_code == 204 and role_of("bob", world.acme) is None


@pytest.mark.parametrize("name", NOT_MANAGERS_OF_ACME)
def test_members_and_outsiders_cannot_add_change_or_remove_members(world, name):
    client = client_for(world[name])

    for response in every_member_write(client, "acme", name, newcomer="bob", changed="alice", removed="vera"):
        assert_error(response, 403, "permission_denied")
    assert role_of("bob", world.acme) is None
    assert role_of("alice", world.acme) == "tester" and role_of("vera", world.acme) == "viewer"
    assert role_of(name, world.acme) in (
        None,
        *[r for r in ("tester", "developer", "system", "viewer", "banker", "teller")],
    )
    assert role_of(name, world.acme) != "admin"


@pytest.mark.parametrize(
    "request_",
    [
        ("post", "acme", None, {"username": "bob", "role": "viewer"}),
        ("patch", "acme", "alice", {"role": "viewer"}),
        ("delete", "acme", "alice", None),
        ("get", "acme", None, None),
    ],
)
def test_an_anonymous_caller_cannot_touch_members(world, request_):
    method, slug, username, body = request_
    url = member_url(slug, username) if username else members_url(slug)

    assert_error(getattr(client_for(), method)(url, body, format="json"), 401, "not_authenticated")
    assert role_of("bob", world.acme) is None and role_of("alice", world.acme) == "tester"


def test_plain_staff_cannot_make_itself_admin_of_another_tenant(world):
    """The issue's first attack: stan added itself as globex admin, then moved money there."""
    response = client_for(world["stan"]).post(
        members_url("globex"), {"username": "stan", "role": "admin"}, format="json"
    )

    assert_error(response, 403, "permission_denied")
    assert role_of("stan", world.globex) is None


# --- the limits of a tenant admin -----------------------------------------------------------------
@pytest.mark.parametrize("name", TENANT_ADMINS)
def test_a_tenant_admin_cannot_appoint_an_admin(world, name):
    client = client_for(world[name])

    new = client.post(members_url("acme"), {"username": "bob", "role": "admin"}, format="json")
    promoted = client.patch(member_url("acme", "alice"), {"role": "admin"}, format="json")

    assert_error(new, 403, "role_not_grantable")
    assert_error(promoted, 403, "role_not_grantable")
    assert role_of("bob", world.acme) is None and role_of("alice", world.acme) == "tester"


def test_a_tenant_admin_answers_the_same_for_an_unknown_user_and_an_existing_one_when_granting_admin(world):
    abe = client_for(world["abe"])

    unknown = abe.post(members_url("acme"), {"username": "nobody-at-all", "role": "admin"}, format="json")
    known = abe.post(members_url("acme"), {"username": "bob", "role": "admin"}, format="json")

    assert without_request_id(unknown) == without_request_id(known)


@pytest.mark.parametrize(("actor", "target"), [("abe", "ada"), ("ada", "abe"), ("abe", "abe")])
def test_a_tenant_admin_cannot_change_or_remove_an_admin(world, actor, target):
    client = client_for(world[actor])

    assert_error(
        client.patch(member_url("acme", target), {"role": "viewer"}, format="json"), 403, "protected_member"
    )
    assert_error(
        client.post(members_url("acme"), {"username": target, "role": "viewer"}, format="json"),
        403,
        "protected_member",
    )
    assert_error(client.delete(member_url("acme", target)), 403, "protected_member")
    assert role_of(target, world.acme) == "admin"


@pytest.mark.parametrize("target", ["stan", "root", "opal"])
def test_a_tenant_admin_cannot_add_a_staff_or_superuser_account_and_cannot_tell_it_exists(world, target):
    abe = client_for(world["abe"])

    refused = abe.post(members_url("acme"), {"username": target, "role": "viewer"}, format="json")
    unknown = abe.post(members_url("acme"), {"username": "nobody-at-all", "role": "viewer"}, format="json")

    assert_error(refused, 400, "validation_error")
    assert without_request_id(refused) == without_request_id(unknown)
    assert role_of(target, world.acme) is None


def test_a_tenant_admin_cannot_change_or_remove_a_staff_member(world):
    set_membership(world["stan"].user, world.acme, "viewer")  # a platform operator's doing
    abe = client_for(world["abe"])

    assert_error(
        abe.patch(member_url("acme", "stan"), {"role": "tester"}, format="json"), 403, "protected_member"
    )
    assert_error(abe.delete(member_url("acme", "stan")), 403, "protected_member")
    assert role_of("stan", world.acme) == "viewer"


def test_changing_or_removing_a_non_member_answers_the_same_whether_the_user_exists(world):
    abe = client_for(world["abe"])

    for method, body in (("patch", {"role": "viewer"}), ("delete", None)):
        exists = getattr(abe, method)(member_url("acme", "bob"), body, format="json")
        unknown = getattr(abe, method)(member_url("acme", "nobody-at-all"), body, format="json")
        assert_error(exists, 404, "membership_not_found")
        assert without_request_id(exists)["message"].replace("bob", "X") == without_request_id(unknown)[
            "message"
        ].replace("nobody-at-all", "X")
    assert role_of("bob", world.acme) is None


def test_patch_never_creates_a_membership(world):
    response = client_for(world["root"]).patch(member_url("acme", "bob"), {"role": "viewer"}, format="json")

    assert_error(response, 404, "membership_not_found")
    assert role_of("bob", world.acme) is None


@pytest.mark.parametrize("name", OPERATORS)
def test_operators_appoint_and_remove_admins(world, name):
    client = client_for(world[name])

    assert (
        client.post(members_url("acme"), {"username": "bob", "role": "admin"}, format="json").status_code
        == 201
    )
    assert client.patch(member_url("acme", "abe"), {"role": "viewer"}, format="json").status_code == 200
    assert client.delete(member_url("acme", "ada")).status_code == 204
    assert role_of("bob", world.acme) == "admin" and role_of("abe", world.acme) == "viewer"
    assert role_of("ada", world.acme) is None


def test_a_demoted_admin_is_refused_at_once(world):
    root, abe = client_for(world["root"]), client_for(world["abe"])
    assert root.patch(member_url("acme", "abe"), {"role": "viewer"}, format="json").status_code == 200

    response = abe.patch(member_url("acme", "alice"), {"role": "developer"}, format="json")

    assert_error(response, 403, "permission_denied")
    assert role_of("alice", world.acme) == "tester" and role_of("abe", world.acme) == "viewer"


def test_a_member_removed_loses_its_tokens_power_in_the_tenant_at_once(world):
    root, vera = client_for(world["root"]), client_for(world["vera"])
    assert vera.get("/t/acme/api/commands/").status_code == 200

    assert root.delete(member_url("acme", "vera")).status_code == 204

    assert_error(vera.get("/t/acme/api/commands/"), 403, "not_a_member")
    assert AuthToken.objects.filter(user=world["vera"].user).exists()  # the token lives; the role does not


def test_each_membership_permission_grants_only_its_own_action(world):
    """Explicit permissions are granted one by one: view lists, add adds, nothing more."""
    viewer = User.objects.create_user("vic", password="vic-password-123")
    viewer.user_permissions.add(Permission.objects.get(codename="view_membership"))
    adder = User.objects.create_user("ann", password="ann-password-123")
    adder.user_permissions.add(Permission.objects.get(codename="add_membership"))
    vic, ann = client_for(), client_for()
    vic.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=viewer)[1]}")
    ann.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=adder)[1]}")

    assert vic.get(members_url("globex")).status_code == 200
    assert_error(
        vic.post(members_url("globex"), {"username": "alice", "role": "viewer"}, format="json"),
        403,
        "permission_denied",
    )
    assert (
        ann.post(members_url("globex"), {"username": "alice", "role": "viewer"}, format="json").status_code
        == 201
    )
    assert_error(
        ann.patch(member_url("globex", "bob"), {"role": "viewer"}, format="json"), 403, "permission_denied"
    )
    assert_error(ann.delete(member_url("globex", "bob")), 403, "permission_denied")
    assert role_of("bob", world.globex) == "developer" and role_of("alice", world.globex) == "viewer"
