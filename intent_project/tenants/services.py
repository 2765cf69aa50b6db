"""Tenant and membership operations shared by the API, the admin and management commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from intent_project.tenants.models import Domain, Membership, Tenant, schema_name_for, validate_slug
from intent_project.tenants.roles import Role


@dataclass(frozen=True)
class TenantExists(Exception):
    slug: str


def create_tenant(slug: str, name: str) -> Tenant:
    """Create the tenant row, its schema (migrated) and its path domain, or raise."""
    validate_slug(slug)
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantExists(slug)
    # Schema creation runs DDL and migrations; doing it inside the same transaction as the
    # rows means a failure leaves neither a row without a schema nor a schema without a row.
    with transaction.atomic():
        tenant = Tenant(slug=slug, name=name or slug, schema_name=schema_name_for(slug))
        tenant.save(verbosity=0)
        Domain.objects.create(domain=slug, tenant=tenant, is_primary=True)
    from projections_app.runner import ensure_checkpoints

    ensure_checkpoints(tenant.schema_name)
    return tenant


def ensure_public_tenant() -> Tenant:
    """django-tenants answers 404 on every public URL until this row exists."""
    tenant, _ = Tenant.objects.get_or_create(
        schema_name="public", defaults={"slug": "public", "name": "Public"}
    )
    return tenant


def set_membership(user: AbstractBaseUser, tenant: Tenant, role: str) -> tuple[Membership, bool]:
    if role not in Role.values:
        raise ValueError(role)
    membership, created = Membership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    return membership, created


def role_in(user: Any, tenant: Tenant | None) -> str | None:
    """The role `user` acts with in `tenant`, or None when they are not a member."""
    if user is None or tenant is None or not user.is_authenticated:
        return None
    cache = getattr(user, "_tenant_roles", None)
    if cache is None:
        cache = {}
        user._tenant_roles = cache  # type: ignore[attr-defined]
    if tenant.pk not in cache:
        cache[tenant.pk] = (
            Membership.objects.filter(user_id=user.pk, tenant_id=tenant.pk)
            .values_list("role", flat=True)
            .first()
        )
    return cache[tenant.pk]
