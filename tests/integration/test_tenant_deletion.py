"""Deleting a tenant: superusers only (admin, shell), with the slug typed; its schema, domains
and memberships go, an audit record stays, and a refused attempt deletes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from intent_project.tenants.models import Domain, Membership, Tenant, TenantDeletion
from intent_project.tenants.services import set_membership
from tests.integration.helpers import submit


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def _gone(tenant: Any) -> None:
    """Nothing of the tenant is left: no schema in the catalog, no row naming it."""
    assert not _schema_exists(tenant.schema_name)
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert not Domain.objects.filter(tenant_id=tenant.pk).exists()
    assert not Membership.objects.filter(tenant_id=tenant.pk).exists()


def _intact(tenant: Any) -> None:
    assert _schema_exists(tenant.schema_name) and Tenant.objects.filter(pk=tenant.pk).exists()
    assert not TenantDeletion.objects.filter(slug=tenant.slug).exists()


@pytest.fixture
def doomed(fresh_tenant: Any, world: Any) -> Any:
    set_membership(world["ada"].user, fresh_tenant, "admin")
    submit(fresh_tenant, "logMessage", {"message": "soon gone"}, role="admin")
    connection.set_schema_to_public()
    return fresh_tenant


def _browser(user: Any) -> Client:
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    return browser


def test_a_superuser_deletes_a_tenant_after_typing_its_slug(doomed, world):
    root = _browser(world["root"].user)
    page = f"/admin/tenants/tenant/{doomed.pk}/delete/"
    asked = root.get(page)
    assert asked.status_code == 200 and b'name="confirm"' in asked.content

    wrong = root.post(page, {"confirm": doomed.slug.upper()})
    assert wrong.status_code == 400 and b"Type the tenant" in wrong.content
    _intact(doomed)

    done = root.post(page, {"confirm": doomed.slug})

    assert done.status_code == 302
    _gone(doomed)
    record = TenantDeletion.objects.get(slug=doomed.slug)
    assert (record.deleted_by, record.schema_name) == ("root", doomed.schema_name)
    assert record.counts == {"events": 0, "commands": 1, "members": 1}  # stored, not yet processed


def test_staff_with_the_delete_permission_are_still_refused_and_nothing_is_deleted(doomed, world):
    opal = get_user_model().objects.get(username="opal")
    opal.user_permissions.add(Permission.objects.get(codename="delete_tenant"))
    browser = _browser(get_user_model().objects.get(pk=opal.pk))

    assert (
        browser.post(f"/admin/tenants/tenant/{doomed.pk}/delete/", {"confirm": doomed.slug}).status_code
        == 403
    )
    changelist = browser.post(
        "/admin/tenants/tenant/",
        {"action": "delete_selected", "_selected_action": [doomed.pk], "post": "yes"},
    )
    assert changelist.status_code in (200, 302)
    _intact(doomed)
    opal.user_permissions.clear()


def test_the_shell_deletes_only_with_the_slug_repeated(doomed):
    with pytest.raises(CommandError, match="Nothing was deleted"):
        call_command("remove_tenant", doomed.slug, confirm="something-else")
    _intact(doomed)

    call_command("remove_tenant", doomed.slug, confirm=doomed.slug)

    _gone(doomed)
    assert TenantDeletion.objects.get(slug=doomed.slug).deleted_by.startswith("shell:")


def test_only_superusers_read_the_deletion_records(doomed, world):
    call_command("remove_tenant", doomed.slug, confirm=doomed.slug)
    record = TenantDeletion.objects.get(slug=doomed.slug)

    assert _browser(world["root"].user).get("/admin/tenants/tenantdeletion/").status_code == 200
    for persona in ("opal", "ada", "stan"):  # a platform operator, a tenant admin, plain staff
        browser = _browser(get_user_model().objects.get(username=persona))
        assert browser.get("/admin/tenants/tenantdeletion/").status_code == 403, persona
        assert (
            browser.post(f"/admin/tenants/tenantdeletion/{record.pk}/delete/", {"post": "yes"}).status_code
            == 403
        )
    assert TenantDeletion.objects.filter(pk=record.pk).exists()
