"""python manage.py remove_tenant SLUG --confirm SLUG: drop a tenant, keeping an audit record.

Not named delete_tenant: django-tenants' command of that name comes first (its app is listed
before ours) and keeps no record."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from intent_project.tenants.models import Tenant
from intent_project.tenants.services import DeletionRefused, delete_tenant


class Command(BaseCommand):
    help = (
        "Delete a tenant: its schema (every event, command, read model), memberships and domains, "
        "keeping a TenantDeletion record (who, when, counts). --confirm must repeat the slug."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--confirm", required=True, help="The slug again: nothing is deleted otherwise")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=options["slug"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['slug']}'.")
        try:
            record = delete_tenant(tenant, confirm=options["confirm"], by=f"shell:{getpass.getuser()}")
        except DeletionRefused as exc:
            raise CommandError(f"{exc} Nothing was deleted.") from None
        self.stdout.write(f"Deleted tenant {record.slug} (schema {record.schema_name}): {record.counts}.")
