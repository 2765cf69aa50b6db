"""Shared pieces of the operator management commands: choosing tenants, failing clearly."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from intent_project.tenants.models import Tenant


def add_tenant_arguments(parser: CommandParser, *, required: bool = False) -> None:
    parser.add_argument("--tenant", action="append", metavar="SLUG", help="Tenant slug (repeatable).")
    if not required:
        parser.add_argument("--all-tenants", action="store_true", help="Every tenant (the default).")


def selected_tenants(options: dict[str, Any], *, required: bool = False) -> list[Tenant]:
    slugs = options.get("tenant") or []
    tenants = Tenant.objects.exclude(schema_name="public").order_by("slug")
    if slugs:
        found = list(tenants.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {t.slug for t in found})
        if missing:
            raise CommandError(f"No tenant {', '.join(missing)}.")
        return found
    if required:
        raise CommandError("Name the tenant with --tenant SLUG.")
    return list(tenants)


def one_tenant(options: dict[str, Any]) -> Tenant:
    tenants = selected_tenants(options, required=True)
    if len(tenants) != 1:
        raise CommandError("Name exactly one tenant with --tenant SLUG.")
    return tenants[0]
