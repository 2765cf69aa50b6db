from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from intent_project.tenancy import use_public_schema
from intent_project.tenants.models import Domain, Membership, Tenant
from intent_project.tenants.services import create_tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "schema_name", "created_at", "admin_link")
    search_fields = ("slug", "name")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).exclude(schema_name="public")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The slug names the schema and the URL; it cannot change after creation.
        return ("schema_name", "created_at", "slug") if obj else ("schema_name", "created_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("slug", "name", "schema_name", "created_at")

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        tenant = create_tenant(obj.slug, obj.name)
        use_public_schema()
        obj.pk = tenant.pk
        obj.schema_name = tenant.schema_name
        obj._state.adding = False

    @admin.display(description="tenant admin")
    def admin_link(self, obj: Tenant) -> Any:
        from django.utils.html import format_html

        return format_html('<a href="/t/{}/admin/">/t/{}/admin/</a>', obj.slug, obj.slug)


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role", "tenant")
    search_fields = ("user__username", "tenant__slug")
    autocomplete_fields = ("user", "tenant")


admin.site.site_url = "/api/docs/"  # the platform has no public home page; the API docs are it
