"""Tenant and membership operations shared by the API, the admin and management commands."""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_context, schema_exists

from intent_project import wakeups
from intent_project.tenants.models import (
    Domain,
    Membership,
    SweepMark,
    Tenant,
    schema_name_for,
    validate_slug,
)
from intent_project.tenants.roles import Role
from intent_project.tenants.template import copy_template, prepare_copy


@dataclass(frozen=True)
class TenantExists(Exception):
    slug: str


def ensure_template() -> None:
    """Make sure the template schema exists and has every migration applied.

    Copying a stale template and then recording all migrations as applied would give a
    tenant tables that lie about their history, so the template is brought up to date
    (cheap when it already is) before every copy. Callers hold the template lock.
    """
    template = settings.TENANT_TEMPLATE_SCHEMA
    quoted = connection.ops.quote_name(template)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s), to_regclass(%s) IS NOT NULL",
            [template, f"{quoted}.django_migrations"],
        )
        exists, has_history = cursor.fetchone()
        if not exists:
            cursor.execute(f"CREATE SCHEMA {quoted}")
    if has_history and _all_recorded(template):
        return
    with schema_context(template):
        executor = MigrationExecutor(connection)
        current = not executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not current:
        call_command("migrate_schemas", schema_name=template, interactive=False, verbosity=0)


def _migrations_on_disk() -> set[tuple[str, str]]:
    """(app, name) of every migration file, found the way Django's MigrationLoader finds
    them but without importing them (importing and building the graph is what makes the
    full check cost a fresh process tens of milliseconds)."""
    found = set()
    for app in apps.get_app_configs():
        module_name, _explicit = MigrationLoader.migrations_module(app.label)
        if module_name is None:
            continue
        try:
            module = import_module(module_name)
        except ModuleNotFoundError:
            continue
        if getattr(module, "__path__", None) is None:
            continue
        found |= {
            (app.label, name)
            for _finder, name, is_package in pkgutil.iter_modules(module.__path__)
            if not is_package and name[0] not in "_~"
        }
    return found


def _all_recorded(template: str) -> bool:
    """Every migration on disk is recorded as applied in the template. When not (or when
    squashed migrations make the names differ) the caller asks Django's executor."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(template)}.django_migrations")
        recorded = set(cursor.fetchall())
    return _migrations_on_disk() <= recorded


def _lock_template() -> None:
    """Serialise work on the template for the rest of the transaction: two creators must
    not migrate it at once, and nobody may copy it halfway through a migration."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('intent_tenant_template'))")


def prepare_template() -> bool:
    """Bring the template up to date and compile and check its copy program now (a deploy
    step, run by migrate_tenants) rather than in the first creation after a migration.
    True when a program was compiled."""
    with transaction.atomic():
        _lock_template()
        ensure_template()
        return prepare_copy(settings.TENANT_TEMPLATE_SCHEMA)


def create_tenant(slug: str, name: str) -> Tenant:
    """Create the tenant row, its schema (migrated) and its path domain, or raise."""
    validate_slug(slug)
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantExists(slug)
    # Schema creation runs DDL and migrations; doing it inside the same transaction as the
    # rows means a failure leaves neither a row without a schema nor a schema without a row.
    with transaction.atomic():
        tenant = Tenant(slug=slug, name=name or slug, schema_name=schema_name_for(slug))
        if settings.TENANT_CLONE_FROM_TEMPLATE:
            _lock_template()
            ensure_template()
            # Tables, constraints and indexes under the template's names, fresh sequences,
            # functions, triggers and the migration history, from DDL read once per process.
            copy_template(settings.TENANT_TEMPLATE_SCHEMA, tenant.schema_name)
            tenant.auto_create_schema = False
        tenant.save(verbosity=0)
        Domain.objects.create(domain=slug, tenant=tenant, is_primary=True)
    wakeups.read_side().schema_created(tenant.schema_name)  # the projections' checkpoints
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


def current_role(user_id: Any, tenant_id: Any) -> str | None:
    """The membership's role as stored now. Unordered on purpose: Membership's default
    ordering would join tenants and users into a one-row primary-key lookup."""
    roles = (
        Membership.objects.filter(user_id=user_id, tenant_id=tenant_id)
        .order_by()
        .values_list("role", flat=True)
    )
    return next(iter(roles[:1]), None)


def role_in(user: Any, tenant: Tenant | None) -> str | None:
    """The role `user` acts with in `tenant`, or None when they are not a member.

    Read from the database, never from a per-process cache: a role removed or lowered by
    any process is the role the next request acts with, everywhere. The answer is memoised
    on the user object only, which lives for one request (authentication loads it anew).
    """
    if user is None or tenant is None or not user.is_authenticated:
        return None
    memo = _roles_memo(user)
    if tenant.pk not in memo:
        memo[tenant.pk] = current_role(user.pk, tenant.pk)
    return memo[tenant.pk]


def remember_role(user: Any, tenant_id: Any, role: str | None) -> None:
    """The role `user` has in the tenant as the statement that just loaded `user` read it
    (the API's authentication joins the membership: intent_project/api/authentication.py);
    role_in answers it for this request without a query. Like role_in's own memo, it lives
    on the user object, which is loaded anew by every request."""
    _roles_memo(user)[tenant_id] = role


def _roles_memo(user: Any) -> dict[Any, str | None]:
    memo = getattr(user, "_tenant_roles", None)
    if memo is None:
        memo = {}
        user._tenant_roles = memo
    return memo


def members_of(tenant: Tenant) -> list[Any]:
    """The tenant's member users, by username."""
    return [
        m.user
        for m in Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")
    ]


class DeletionRefused(Exception):
    """A tenant deletion that did not happen, and why."""


def _row_counts(schema_name: str) -> dict[str, int]:
    """How many events and commands the tenant held (read just before its schema goes)."""
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for label, key in (("events_app.Event", "events"), ("commands_app.Command", "commands")):
            table = apps.get_model(label)._meta.db_table
            cursor.execute(
                f"SELECT count(*) FROM {connection.ops.quote_name(schema_name)}.{connection.ops.quote_name(table)}"
            )
            counts[key] = int(cursor.fetchone()[0])
    return counts


def delete_tenant(tenant: Tenant, *, confirm: str, by: str) -> Any:
    """Drop the tenant's schema and its rows (memberships, domains) and keep an audit record
    in the public schema, in one transaction. `confirm` must be the tenant's slug, typed."""
    from intent_project.tenants.models import TenantDeletion

    if tenant.schema_name in (settings.PUBLIC_SCHEMA_NAME, settings.TENANT_TEMPLATE_SCHEMA):
        raise DeletionRefused(f"'{tenant.slug}' is not a tenant that can be deleted.")
    if confirm != tenant.slug:
        raise DeletionRefused(f"Type the tenant's slug, '{tenant.slug}', to confirm its deletion.")
    with transaction.atomic():
        # Nobody else is creating or altering it meanwhile; the row lock holds until commit.
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        counts = _row_counts(locked.schema_name) if schema_exists(locked.schema_name) else {}
        counts["members"] = Membership.objects.filter(tenant=locked).count()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(locked.schema_name)} CASCADE")
        record = TenantDeletion.objects.create(
            slug=locked.slug, name=locked.name, schema_name=locked.schema_name, deleted_by=by, counts=counts
        )
        SweepMark.objects.filter(schema_name=locked.schema_name).delete()  # nothing left to sweep
        locked.delete()  # its domains and memberships with it (auto_drop_schema is off: dropped above)
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return record
