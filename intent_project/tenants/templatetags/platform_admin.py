"""Template tags of the platform admin's pages (templates/admin/platform_index.html)."""

from __future__ import annotations

from typing import Any

from django import template

from intent_project.tenants import policy

register = template.Library()

TENANT_ADMINS_SHOWN = 20  # more go through the tenant list (searchable, paginated)


@register.simple_tag(takes_context=True)
def tenant_admins(context: dict[str, Any]) -> dict[str, Any]:
    """The tenant admins the logged-in user may open, the first TENANT_ADMINS_SHOWN by slug,
    and whether there are more."""
    tenants = list(policy.tenant_admins_open_to(context["request"].user)[: TENANT_ADMINS_SHOWN + 1])
    return {"tenants": tenants[:TENANT_ADMINS_SHOWN], "more": len(tenants) > TENANT_ADMINS_SHOWN}
