"""Who may do what on the platform side: tenants, users, memberships, tokens.

One module, called by the public API (intent_project/api/views.py), the platform admin
(tenants/admin.py) and anything else that changes these rows.

Platform power belongs to superusers or to explicit Django model permissions
(`user.has_perm("tenants.add_tenant")` ...). `is_staff` only means "may log in to an
admin": a staff user without permissions may do nothing here.

A tenant's `admin` (a membership role, not a platform flag) manages that tenant's members
through the API, within these limits, which platform operators are not bound by:

- it grants any role but `admin`: making admins is a platform act (four eyes: a tenant
  admin cannot appoint a second admin that it could then not remove);
- it cannot change or remove a membership whose role is `admin` (its own included);
- it cannot add, change or remove a staff or superuser account;
- adding an unknown user and adding a user it may not add answer the same (no enumeration).

Every decision reads the database in the transaction that writes: the acting admin's own
membership row is locked (SELECT ... FOR UPDATE) before its role is read, so a demotion
either commits first (and the check sees it) or waits until this write has finished.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from intent_project import lifecycle
from intent_project.tenants.models import Membership, Tenant
from intent_project.tenants.roles import Role
from intent_project.tenants.services import current_role

User = get_user_model()


class PlatformAction(StrEnum):
    """Platform actions and the Django permission that grants each one."""

    LIST_ALL_TENANTS = "tenants.view_tenant"
    CREATE_TENANT = "tenants.add_tenant"
    CHANGE_TENANT = "tenants.change_tenant"
    DELETE_TENANT = "tenants.delete_tenant"
    CREATE_USER = "auth.add_user"
    VIEW_MEMBERS = "tenants.view_membership"
    ADD_MEMBER = "tenants.add_membership"
    CHANGE_MEMBER = "tenants.change_membership"
    REMOVE_MEMBER = "tenants.delete_membership"


@dataclass
class AccessRefused(Exception):
    """A platform decision said no. Views answer it as `status`/`code` in the error shape."""

    status: int
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


# Built anew for each refusal: a module-level exception instance raised again and again
# would collect every raise's traceback (and be shared between threads).
def cannot_add() -> AccessRefused:
    """The one answer to "add this username", whether the user does not exist or exists and
    may not be added by this caller: the difference would tell who has an account."""
    message = "No user with this username can be added to this tenant."
    return AccessRefused(400, "validation_error", message, {"fields": {"username": [message]}})


def admin_not_grantable() -> AccessRefused:
    return AccessRefused(
        403,
        "role_not_grantable",
        "A tenant admin grants every role but admin; platform operators appoint admins.",
        {"grantable_roles": sorted(r for r in Role.values if r != Role.ADMIN)},
    )


def not_a_manager() -> AccessRefused:
    return AccessRefused(
        403, "permission_denied", "Only platform operators or this tenant's admins manage its members."
    )


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def may(user: Any, action: PlatformAction) -> bool:
    """The superuser flag or the explicit permission; never `is_staff` alone."""
    return _active(user) and (user.is_superuser or user.has_perm(action.value))


def may_model(user: Any, app_label: str, model_name: str, verb: str) -> bool:
    """Admin pages: `verb` in add/change/delete/view, by the same rule as `may`."""
    return _active(user) and (user.is_superuser or user.has_perm(f"{app_label}.{verb}_{model_name}"))


def may_grant_platform_power(user: Any) -> bool:
    """Making staff or superusers, and handing out permissions or groups: superusers only.
    A holder of `auth.change_user` could otherwise give itself every permission."""
    return _active(user) and bool(user.is_superuser)


def may_manage_account(actor: Any, account: Any) -> bool:
    """Changing a user account (password, flags): a staff or superuser account only by a
    superuser, so `auth.change_user` cannot take over an operator's login."""
    if account is not None and (account.is_staff or account.is_superuser):
        return may_grant_platform_power(actor)
    return True


def create_user_allowed(actor: Any, *, staff: bool) -> None:
    if not may(actor, PlatformAction.CREATE_USER):
        raise AccessRefused(403, "permission_denied", "Creating users needs the auth.add_user permission.")
    if staff and not may_grant_platform_power(actor):
        raise AccessRefused(403, "superuser_only", "Only superusers may create staff users.")


def _current_role(user: Any, tenant: Tenant) -> str | None:
    if not _active(user):
        return None
    return current_role(user.pk, tenant.pk)


def may_list_members(actor: Any, tenant: Tenant) -> bool:
    return may(actor, PlatformAction.VIEW_MEMBERS) or _current_role(actor, tenant) == Role.ADMIN


def require_member_manager(actor: Any, tenant: Tenant) -> None:
    """Refuse outsiders before anything about the target is looked at (no enumeration)."""
    if not (
        may(actor, PlatformAction.ADD_MEMBER)
        or may(actor, PlatformAction.CHANGE_MEMBER)
        or may(actor, PlatformAction.REMOVE_MEMBER)
        or _current_role(actor, tenant) == Role.ADMIN
    ):
        raise not_a_manager()


def _lock(actor: Any, target: Any, tenant: Tenant) -> tuple[str | None, Membership | None]:
    """Lock the actor's and the target's memberships (one statement, in id order, so two
    admins acting on each other cannot deadlock) and return the actor's role and the
    target's membership as they are now."""
    rows = list(
        Membership.objects.select_for_update()
        .filter(tenant=tenant, user_id__in={actor.pk, target.pk})
        .order_by("pk")
    )
    actor_role = next((m.role for m in rows if m.user_id == actor.pk), None)
    return actor_role, next((m for m in rows if m.user_id == target.pk), None)


def _as_tenant_admin(
    actor_role: str | None, target: Any, membership: Membership | None, role: str | None
) -> None:
    """The limits of a tenant admin who is not a platform operator (see the module doc)."""
    if actor_role != Role.ADMIN:
        raise not_a_manager()
    if membership is None:
        if target.is_staff or target.is_superuser:
            raise cannot_add()
    elif membership.role == Role.ADMIN or target.is_staff or target.is_superuser:
        raise AccessRefused(
            403,
            "protected_member",
            "This membership belongs to an admin or a platform account; platform operators manage it.",
        )
    if role == Role.ADMIN:
        raise admin_not_grantable()


def set_member_role(
    actor: Any, tenant: Tenant, username: str, role: str, *, create: bool = True
) -> tuple[Membership, bool]:
    """Give `username` `role` in `tenant` on behalf of `actor`; (membership, created).

    `create=False` only changes an existing membership (404 otherwise)."""
    if role not in Role.values:
        raise ValueError(role)
    require_member_manager(actor, tenant)
    if role == Role.ADMIN and not (
        may(actor, PlatformAction.ADD_MEMBER) or may(actor, PlatformAction.CHANGE_MEMBER)
    ):
        # Before the username is looked at: the answer must not depend on who exists.
        raise admin_not_grantable()
    target = User.objects.filter(username=username).first()
    with transaction.atomic():
        if target is None:
            if create:
                raise cannot_add()
            raise _not_a_member(username)
        actor_role, membership = _lock(actor, target, tenant)
        if membership is None and not create:
            raise _not_a_member(username)
        action = PlatformAction.CHANGE_MEMBER if membership else PlatformAction.ADD_MEMBER
        if not may(actor, action):
            _as_tenant_admin(actor_role, target, membership, role)
        if membership is None:
            _audit_membership("member_added", actor, tenant, username, role=role)
            return Membership.objects.create(user=target, tenant=tenant, role=role), True
        _audit_membership("member_changed", actor, tenant, username, role=role, previous=membership.role)
        membership.role = role
        membership.save(update_fields=["role"])
        return membership, False


def remove_member(actor: Any, tenant: Tenant, username: str) -> None:
    """Remove `username`'s membership of `tenant` on behalf of `actor`."""
    require_member_manager(actor, tenant)
    target = User.objects.filter(username=username).first()
    with transaction.atomic():
        if target is None:
            raise _not_a_member(username)
        actor_role, membership = _lock(actor, target, tenant)
        if membership is None:
            raise _not_a_member(username)
        if not may(actor, PlatformAction.REMOVE_MEMBER):
            _as_tenant_admin(actor_role, target, membership, None)
        _audit_membership("member_removed", actor, tenant, username, previous=membership.role)
        membership.delete()


def _audit_membership(action: str, actor: Any, tenant: Tenant, username: str, **details: Any) -> None:
    """Log the change once it is committed (nothing for a refusal or a rollback)."""
    transaction.on_commit(
        functools.partial(
            lifecycle.operator_action,
            action,
            operator=actor.get_username(),
            target=username,
            tenant=tenant.schema_name,
            **details,
        )
    )


def _not_a_member(username: str) -> AccessRefused:
    # The same for an unknown user and a user who is not a member here.
    return AccessRefused(404, "membership_not_found", f"'{username[:150]}' is not a member of this tenant.")


def visible_tenants(actor: Any) -> Any:
    """Every tenant for those allowed to list them all; otherwise the actor's own."""
    tenants = Tenant.objects.exclude(schema_name="public")
    if may(actor, PlatformAction.LIST_ALL_TENANTS):
        return tenants
    return tenants.filter(memberships__user_id=actor.pk)


def tenant_admins_open_to(user: Any) -> Any:
    """The tenants whose admin (/t/<slug>/admin/) `user` may open: every tenant for a staff
    superuser, the tenants of its memberships for other staff, none for anyone else. The
    tenant admin site decides the same way on each request (TenantAdminSite.has_permission);
    this only says where the platform admin's links go."""
    tenants = Tenant.objects.exclude(schema_name="public").order_by("slug")
    if not (_active(user) and user.is_staff):
        return tenants.none()
    if user.is_superuser:
        return tenants
    return tenants.filter(memberships__user_id=user.pk)
