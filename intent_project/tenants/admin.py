"""The platform admin (/admin/): tenants, memberships, users, groups, API tokens, and the
way to each tenant's admin (its index lists those its user may open; each tenant's row
and page link to /t/<slug>/admin/).

Every page asks tenants/policy.py, the module the public API asks: the superuser flag or
an explicit model permission, never `is_staff` alone. Granting platform power (staff,
superuser, permissions, groups) and changing an operator's account are for superusers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from knox.models import AuthToken

from intent_project.tenancy import use_public_schema
from intent_project.tenants import policy
from intent_project.tenants.models import Domain, Membership, Tenant, TenantDeletion
from intent_project.tenants.portable import export_download
from intent_project.tenants.services import DeletionRefused, create_tenant, delete_tenant

User = get_user_model()


class PolicyAdminMixin:
    """Django's add/change/delete/view permissions, decided by tenants/policy.py."""

    model: Any

    def _may(self, request: HttpRequest, verb: str) -> bool:
        meta = self.model._meta
        return policy.may_model(request.user, meta.app_label, meta.model_name, verb)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return any(self._may(request, verb) for verb in ("view", "add", "change", "delete"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "view") or self._may(request, "change")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._may(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "delete")


class MembershipInline(PolicyAdminMixin, admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(Tenant)
class TenantAdmin(PolicyAdminMixin, admin.ModelAdmin):
    list_display = ("slug", "name", "schema_name", "suspended", "created_at", "admin_link")
    list_filter = ("suspended",)
    search_fields = ("slug", "name")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).exclude(schema_name="public")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ("slug", "name", "suspended", "schema_name", "created_at")
        return (*fields, "admin_link") if obj else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The slug names the schema and the URL; it cannot change after creation.
        return ("schema_name", "created_at", "slug", "admin_link") if obj else ("schema_name", "created_at")

    def view_on_site(self, obj: Tenant) -> str:
        """The page's "View on site" button opens the tenant's own admin."""
        return f"/t/{obj.slug}/admin/"

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        tenant = create_tenant(obj.slug, obj.name)
        use_public_schema()
        obj.pk = tenant.pk
        obj.schema_name = tenant.schema_name
        obj._state.adding = False

    # -- export: superusers only, like the API's GET /api/tenants/<slug>/export/ ----------------
    change_form_template = "admin/tenants/tenant/change_form.html"

    def get_urls(self) -> list[Any]:
        export = path(
            "<path:object_id>/export/",
            self.admin_site.admin_view(self.export_view),
            name="tenants_tenant_export",
        )
        return [export, *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        may_export = bool(request.user.is_active and request.user.is_superuser)
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "may_export": may_export}
        )

    def export_view(self, request: HttpRequest, object_id: str) -> Any:
        """The tenant as one export file (portable.py), spooled to disk, then downloaded."""
        if not (request.user.is_active and request.user.is_superuser):
            raise PermissionDenied("Only superusers export tenants.")
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        return export_download(tenant, operator=request.user.get_username())

    # -- deletion: superusers only, one tenant at a time, with its slug typed ------------------
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return bool(user.is_active and user.is_superuser)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # no bulk deletion: each one is typed
        return actions

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        if not self.has_delete_permission(request, tenant):
            raise PermissionDenied("Only superusers delete tenants.")
        error = ""
        if request.method == "POST":
            try:
                record = delete_tenant(
                    tenant, confirm=request.POST.get("confirm", ""), by=request.user.get_username()
                )
            except DeletionRefused as exc:
                error = str(exc)
            else:
                self.message_user(
                    request, f"Deleted tenant {record.slug}: {record.counts}.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:tenants_tenant_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete tenant {tenant.slug}?",
            "opts": self.opts,
            "object": tenant,
            "error": error,
            "members": tenant.memberships.count(),
        }
        return TemplateResponse(
            request, "admin/tenants/delete_tenant.html", context, status=400 if error else 200
        )

    @admin.display(description="tenant admin")
    def admin_link(self, obj: Tenant) -> Any:
        return format_html('<a href="/t/{}/admin/">/t/{}/admin/</a>', obj.slug, obj.slug)


@admin.register(Domain)
class DomainAdmin(PolicyAdminMixin, admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")


@admin.register(Membership)
class MembershipAdmin(PolicyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role", "tenant")
    search_fields = ("user__username", "tenant__slug")
    autocomplete_fields = ("user", "tenant")


# --- users and groups: Django's admins, with platform power reserved to superusers ---------
PLATFORM_POWER_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class PlatformUserAdmin(PolicyAdminMixin, UserAdmin):
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if policy.may_grant_platform_power(request.user):
            return fields
        return fields + PLATFORM_POWER_FIELDS

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and policy.may_manage_account(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and policy.may_manage_account(request.user, obj)


@admin.register(Group)
class PlatformGroupAdmin(GroupAdmin):
    """A group carries permissions: whoever edits groups hands out permissions."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return policy.may_grant_platform_power(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return policy.may_grant_platform_power(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return policy.may_grant_platform_power(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return policy.may_grant_platform_power(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return policy.may_grant_platform_power(request.user)


# --- API tokens: listed without their secret, revoked by deleting; created only by logging in --
admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class AuthTokenAdmin(PolicyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "token_start", "created", "expiry")
    list_filter = ("expiry",)
    search_fields = ("user__username",)
    fields = ("user", "token_start", "created", "expiry")
    readonly_fields = fields
    ordering = ("-created",)

    @admin.display(description="token starts with")
    def token_start(self, obj: AuthToken) -> str:
        # 8 of 64 characters: enough to tell tokens apart, far too little to use one.
        return obj.token_key[:8] + "…"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.site_url = "/api/docs/"  # the platform has no public home page; the API docs are it
# The index lists the tenant admins its user may open above the models
# (tenants/templates/admin/platform_index.html); who opens the index itself is unchanged.
admin.site.index_template = "admin/platform_index.html"
admin.site.site_header = "Intent: platform admin"
admin.site.site_title = "Intent platform admin"
admin.site.index_title = "Tenants, users and memberships"


@admin.register(TenantDeletion)
class TenantDeletionAdmin(admin.ModelAdmin):
    """The audit of deleted tenants: superusers read it; nobody edits it."""

    list_display = ("slug", "name", "deleted_by", "deleted_at", "counts")
    search_fields = ("slug", "deleted_by")
    readonly_fields = ("slug", "name", "schema_name", "deleted_by", "deleted_at", "counts")

    def _superuser(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
