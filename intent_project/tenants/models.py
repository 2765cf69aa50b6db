"""Shared (public-schema) models: tenants, their path-prefix domains, and memberships."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Now
from django_tenants.models import DomainMixin, TenantMixin

from intent_project.tenants.roles import Role

# A slug is the path segment in /t/<slug>/ and, prefixed, the schema name. The strict form
# keeps NUL bytes, quotes and upper case out of SQL identifiers and URL lookups.
SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
RESERVED_SLUGS = frozenset({"public", "api", "admin", "static", "health", "t"})


def validate_slug(value: str) -> None:
    if not SLUG_RE.fullmatch(value or ""):
        raise ValidationError(
            "A tenant slug is 2-40 characters: lower-case letters, digits and '-', starting with a letter.",
            code="invalid_slug",
        )
    if value in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved.", code="reserved_slug")


def schema_name_for(slug: str) -> str:
    return settings.TENANT_SCHEMA_PREFIX + slug.replace("-", "_")


class Tenant(TenantMixin):
    slug: models.CharField[str, str] = models.CharField(
        max_length=40, unique=True, validators=[validate_slug]
    )
    name: models.CharField[str, str] = models.CharField(max_length=200)
    # Read-only: its reads answer, its commands (sent or retried, by the API or the admin) are
    # refused with `tenant_suspended`; flows already running finish.
    suspended: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    created_at: models.DateTimeField[Any, Any] = models.DateTimeField(auto_now_add=True)

    # Creating a Tenant row creates and migrates its schema (django-tenants).
    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Domain(DomainMixin):
    """django-tenants resolves /t/<segment>/ by matching Domain.domain; ours equals the slug."""


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One role per user per tenant: authorization must never have to pick between two.
            models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_user_and_tenant"),
        ]
        ordering = ["tenant__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}: {self.role}"


class TenantDeletion(models.Model):
    """What is left of a deleted tenant, in the public schema: who deleted it, when, and what
    it held (its schema is gone)."""

    slug = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    schema_name = models.CharField(max_length=63)
    deleted_by = models.CharField(max_length=150)
    deleted_at = models.DateTimeField(auto_now_add=True)
    counts = models.JSONField(default=dict)

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return f"{self.slug}, deleted by {self.deleted_by} at {self.deleted_at:%Y-%m-%d %H:%M:%S}"


class SweepMark(models.Model):
    """A tenant schema the periodic sweep must visit (intent_project/sweep_marks.py).

    Written by the application, in the writer's transaction, whenever something creates
    work the sweep watches (intent_project/announcements.py); removed by the sweep once a
    visit finds nothing left. Keyed by schema name, not by a foreign key to Tenant: a
    writer knows its schema, and a deleted tenant's mark is simply dropped by the next
    full pass.
    """

    schema_name = models.CharField(max_length=63, primary_key=True)
    marked_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.schema_name} (marked {self.marked_at:%Y-%m-%d %H:%M:%S})"


class TemplateCopy(models.Model):
    """The verified program that copies the template schema (intent_project/tenants/template.py).

    Written by tenant creation, in the transaction of the first copy the program made and
    after that copy was compared with the template and found equal, or by migrate_tenants
    after a probe copy it rolls back (template.prepare_copy); read by every process's first
    creation, so a program is compiled and checked once per state of the template. `key` is the template's migration
    history and catalog fingerprint: a template that changed no longer matches, and the
    next creation compiles anew and replaces the row.
    """

    template = models.CharField(max_length=63, primary_key=True)
    key = models.TextField()
    program = models.TextField()  # JSON; text, not jsonb: the statements hold NUL placeholders
    verified_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"copy of {self.template} (verified {self.verified_at:%Y-%m-%d %H:%M:%S})"
