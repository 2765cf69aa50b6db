"""Idempotent first-run setup used by `make run`: schemas, demo tenant, admin user, a fresh token."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from knox.models import AuthToken

from intent_project.tenants.models import Tenant
from intent_project.tenants.roles import Role
from intent_project.tenants.services import create_tenant, set_membership
from projections_app.runner import ensure_checkpoints


class Command(BaseCommand):
    help = "Migrate shared and tenant schemas, ensure the demo tenant, admin user and API token."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", default=os.environ.get("INTENT_DEMO_TENANT", "demo"))
        parser.add_argument("--username", default=os.environ.get("INTENT_ADMIN_USER", "admin"))
        parser.add_argument("--password", default=os.environ.get("INTENT_ADMIN_PASSWORD", "intent-admin"))
        parser.add_argument("--base-url", default=os.environ.get("INTENT_BASE_URL", "http://127.0.0.1:8000"))
        parser.add_argument(
            "--summary-file",
            help="Write the URLs, credentials and token here instead of printing them (make run "
            "shows them once web, worker and beat are up).",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stdout.write("Migrating the shared schema ...")
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        if Tenant.objects.exclude(schema_name="public").exists():
            self.stdout.write("Migrating tenant schemas ...")
            call_command("migrate_tenants", stdout=self.stdout)

        slug = opts["tenant"]
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            self.stdout.write(f"Creating tenant '{slug}' ...")
            tenant = create_tenant(slug, slug.capitalize())
        ensure_checkpoints(tenant.schema_name)

        User = get_user_model()
        user = User.objects.filter(username=opts["username"]).first()
        if user is None:
            user = User.objects.create_superuser(opts["username"], "", opts["password"])
            self.stdout.write(f"Created superuser '{user.username}'.")
        set_membership(user, tenant, Role.ADMIN)
        # Tokens are stored hashed and shown once: every run prints a new one (it expires
        # after TOKEN_TTL_HOURS; POST /api/auth/token/ gives another).
        _, token = AuthToken.objects.create(user=user)

        base = opts["base_url"].rstrip("/")
        rows = [
            ("API (tenant)", f"{base}/t/{slug}/api/commands/"),
            ("Registry", f"{base}/api/registry/"),
            ("Swagger UI", f"{base}/api/docs/"),
            ("Platform admin", f"{base}/admin/"),
            ("Tenant admin", f"{base}/t/{slug}/admin/"),
            ("Health", f"{base}/health/"),
            ("Admin login", f"{user.username} / {opts['password']}"),
            ("API token", token),
        ]
        example = '{"type": "logMessage", "payload": {"message": "hello"}}'
        summary = "".join(f"    {label:<15} {value}\n" for label, value in rows) + (
            "  Try:\n"
            f"    curl -s -X POST {base}/t/{slug}/api/commands/ -H 'Authorization: Token {token}' "
            f"-H 'Content-Type: application/json' -d '{example}'\n"
        )
        self.stdout.write(self.style.SUCCESS("Bootstrap done."))
        if opts.get("summary_file"):
            with open(opts["summary_file"], "w") as fh:
                fh.write(summary)
        else:
            self.stdout.write(summary)
