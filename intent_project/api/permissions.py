"""Who may call what. Tenant access comes from Membership rows, never from the request body."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from intent_project.api.errors import ApiError
from intent_project.tenancy import current_schema
from intent_project.tenants.services import role_in


def current_tenant(request: Request) -> Any:
    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == "public" or current_schema() != tenant.schema_name:
        raise ApiError(404, "tenant_not_found", "This endpoint lives under /t/<tenant>/.")
    return tenant


class IsTenantMember(BasePermission):
    """Members of the request's tenant; superusers may read every tenant.

    Outsiders get 403 `not_a_member` (the tenant's existence is not secret: its slug is
    in every URL an operator hands out, and a 403 tells a client what to fix).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 not_authenticated
        tenant = current_tenant(request)
        role = role_in(request.user, tenant)
        request.tenant_role = role  # type: ignore[attr-defined]
        if role is not None:
            return True
        if request.user.is_superuser and request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        raise ApiError(403, "not_a_member", f"You are not a member of tenant '{tenant.slug}'.")


def tenant_role(request: Request) -> str | None:
    """The caller's role in the request's tenant (set by IsTenantMember), from the membership."""
    return getattr(request, "tenant_role", None)
