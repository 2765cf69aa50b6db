"""Path-prefix tenant resolution (/t/<slug>/...) with the slug validated before any lookup."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django_tenants.middleware.subfolder import TenantSubfolderMiddleware

from intent_project.api.errors import DATABASE_ERRORS, database_unavailable, error_response
from intent_project.tenants import lookups
from intent_project.tenants.models import SLUG_RE

TENANT_PREFIX = "/t/"


class TenantPathMiddleware(TenantSubfolderMiddleware):
    """django-tenants' subfolder middleware, answering unknown tenants in our error shape.

    A NUL byte in the slug reaches PostgreSQL and raises a 500 there, so anything that is
    not a well-formed slug is a 404 before the database sees it.

    The tenant lookup is the first query of nearly every request, public ones included (the
    public tenant's row). A database that is down or full answers here, before any view:
    Django would turn that error into its 500 page (with the traceback under DEBUG), so it
    is answered as the API answers it inside views, 503 `service_unavailable`.
    """

    def process_request(self, request: HttpRequest) -> Any:
        if request.path.startswith(TENANT_PREFIX):
            slug = request.path[len(TENANT_PREFIX) :].split("/", 1)[0]
            if not SLUG_RE.fullmatch(slug):
                return self.no_tenant_found(request, slug)
        try:
            return super().process_request(request)
        except DATABASE_ERRORS:
            return database_unavailable(request)

    def get_tenant(self, domain_model: Any, hostname: str) -> Any:
        # One Domain->Tenant query per request otherwise; see lookups.py for the staleness bound.
        return lookups.tenants_by_domain.get_or_load(
            hostname, lambda: super(TenantPathMiddleware, self).get_tenant(domain_model, hostname)
        )

    def no_tenant_found(self, request: HttpRequest, hostname: str) -> Any:
        shown = hostname[:60].encode("unicode_escape").decode("ascii")
        return error_response(404, "tenant_not_found", f"There is no tenant '{shown}'.", request=request)
