"""The platform admin (/admin/) follows tenants/policy.py: `is_staff` opens it and nothing
more; platform power (staff, superuser, permissions, groups, operators' accounts) is for
superusers, whatever model permissions a staff user holds."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from intent_project.tenants.models import Membership, Tenant

User = get_user_model()


def browser_for(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.fixture
def helga(world):
    """Staff with auth.view_user and auth.change_user, and nothing else."""
    user = User.objects.create_user("helga", password="helga-password-123", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="auth", codename__in=["view_user", "change_user"])
    )
    return User.objects.get(pk=user.pk)  # a fresh object: permissions are cached per object


@pytest.mark.parametrize(
    "path",
    [
        "/admin/tenants/tenant/",
        "/admin/tenants/tenant/add/",
        "/admin/tenants/membership/",
        "/admin/tenants/membership/add/",
        "/admin/tenants/domain/",
        "/admin/auth/user/",
        "/admin/auth/group/",
        "/admin/knox/authtoken/",
        "/admin/axes/accessattempt/",
    ],
)
@pytest.mark.parametrize("name", ["stan", "ada"])
def test_staff_without_permissions_see_no_platform_page(world, name, path):
    assert browser_for(world[name].user).get(path).status_code == 403


def test_plain_staff_cannot_add_a_tenant_or_a_membership_by_posting(world):
    stan = browser_for(world["stan"].user)

    stan.post("/admin/tenants/tenant/add/", {"slug": "evilcorp", "name": "Evil"})
    stan.post(
        "/admin/tenants/membership/add/",
        {"user": world["stan"].user.pk, "tenant": world.globex.pk, "role": "admin"},
    )

    assert not Tenant.objects.filter(slug="evilcorp").exists()
    assert not Membership.objects.filter(user=world["stan"].user).exists()


def test_a_platform_operator_with_permissions_manages_memberships(world):
    opal = browser_for(world["opal"].user)

    assert opal.get("/admin/tenants/membership/").status_code == 200
    response = opal.post(
        "/admin/tenants/membership/add/",
        {"user": world["bob"].user.pk, "tenant": world.acme.pk, "role": "viewer"},
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=world["bob"].user, tenant=world.acme).role == "viewer"


def test_change_user_cannot_make_anyone_staff_superuser_or_give_permissions(world, helga):
    alice = world["alice"].user
    anything = Permission.objects.get(content_type__app_label="tenants", codename="add_tenant")
    group = Group.objects.create(name="everything")

    browser_for(helga).post(
        f"/admin/auth/user/{alice.pk}/change/",
        {
            "username": "alice",
            "email": "alice@example.com",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "user_permissions": [anything.pk],
            "groups": [group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    alice.refresh_from_db()
    assert not alice.is_staff and not alice.is_superuser
    assert not alice.user_permissions.exists() and not alice.groups.exists()


def test_change_user_cannot_take_over_a_staff_or_superuser_account(world, helga):
    helga_browser = browser_for(helga)

    for target in ("root", "stan"):
        user = world[target].user
        response = helga_browser.post(
            f"/admin/auth/user/{user.pk}/password/",
            {"password1": "taken-over-42!", "password2": "taken-over-42!"},
        )
        assert response.status_code == 403
        user.refresh_from_db()
        assert user.check_password(world[target].password)


def test_change_user_cannot_make_itself_superuser(world, helga):
    browser_for(helga).post(
        f"/admin/auth/user/{helga.pk}/change/",
        {
            "username": "helga",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    helga.refresh_from_db()
    assert not helga.is_superuser


def test_groups_are_for_superusers_only(world, helga):
    helga.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="auth", codename__endswith="_group")
    )
    helga = User.objects.get(pk=helga.pk)

    assert browser_for(helga).get("/admin/auth/group/").status_code == 403
    browser_for(helga).post("/admin/auth/group/add/", {"name": "mine"})
    assert not Group.objects.filter(name="mine").exists()
    assert browser_for(world["root"].user).get("/admin/auth/group/").status_code == 200


# --- the way to the tenant admins ------------------------------------------------------------
def _tenant_admins_block(html: str) -> str:
    return html.split('id="tenant-admins"', 1)[1].split("</table>", 1)[0]


def test_a_superuser_finds_every_tenant_admin_on_the_platform_index(world):
    block = _tenant_admins_block(browser_for(world["root"].user).get("/admin/").content.decode())

    assert 'href="/t/acme/admin/"' in block and 'href="/t/globex/admin/"' in block


def test_a_staff_member_finds_only_the_tenant_admins_of_its_memberships(world):
    response = browser_for(world["ada"].user).get("/admin/")
    block = _tenant_admins_block(response.content.decode())

    assert response.status_code == 200
    assert 'href="/t/acme/admin/"' in block and "/t/globex/" not in block
    # ... and the platform's own pages stay closed to it, as before.
    assert browser_for(world["ada"].user).get("/admin/tenants/tenant/").status_code == 403


def test_staff_without_platform_rights_or_membership_gets_no_tenant_link(world):
    response = browser_for(world["stan"].user).get("/admin/")
    block = _tenant_admins_block(response.content.decode())

    assert "/t/" not in block and "No tenant admin to open" in block
    assert "/admin/tenants/tenant/" not in response.content.decode()


def test_a_member_who_is_not_staff_never_sees_the_platform_index(world):
    response = browser_for(world["bob"].user).get("/admin/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_tenant_row_and_page_link_to_its_admin(world):
    root = browser_for(world["root"].user)

    listed = root.get("/admin/tenants/tenant/").content.decode()
    page = root.get(f"/admin/tenants/tenant/{world.acme.pk}/change/").content.decode()

    assert 'href="/t/acme/admin/"' in listed
    assert page.count('href="/t/acme/admin/"') == 2  # the "tenant admin" field and "View on site"
