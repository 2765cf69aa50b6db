"""Guards for code that runs outside a request: tasks must name a real tenant schema."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from commands_app.domain.errors import TenantSuspended


class WrongSchema(RuntimeError):
    pass


def assert_tenant_schema(schema_name: str) -> None:
    """A tenant task sent for `public` (or anything not a tenant schema) is a bug: refuse it.

    Tenant tables do not exist in public; running there would either crash halfway or,
    worse, find same-named tables of another tenant through a stale search_path.
    """
    if not isinstance(schema_name, str) or not schema_name.startswith(settings.TENANT_SCHEMA_PREFIX):
        raise WrongSchema(f"refusing to run a tenant task in schema {schema_name!r}")


def current_schema() -> str:
    """The schema the default connection is set to (django-tenants' wrapper attribute)."""
    from django.db import connection

    return str(getattr(connection, "schema_name", "public"))


def use_public_schema() -> None:
    from django.db import connection

    connection.set_schema_to_public()  # type: ignore[attr-defined]


def refuse_commands_if_suspended(tenant: Any) -> None:
    """Raise TenantSuspended for a suspended tenant (the request's, as resolved: at most
    TENANT_CACHE_SECONDS old in another process)."""
    if getattr(tenant, "suspended", False):
        raise TenantSuspended(
            f"Tenant '{tenant.slug}' is suspended: it can be read, but takes no commands until a "
            "platform admin lifts the suspension."
        )
