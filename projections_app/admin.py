from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model

from intent_project.admin_sites import TenantReadOnlyAdmin, pretty_json, tenant_admin_site
from projections_app.models import ProjectionState
from projections_app.registry import get_read_models
from projections_app.runner import head_position


@admin.register(ProjectionState, site=tenant_admin_site)
class ProjectionStateAdmin(TenantReadOnlyAdmin):
    list_display = ("name", "version", "status", "position", "lag", "failures", "updated_at")
    list_filter = ("status",)
    fields = (
        "name",
        "version",
        "status",
        "position",
        "lag",
        "failures",
        "error_pretty",
        "retry_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="lag (positions)")
    def lag(self, obj: ProjectionState) -> int:
        return max(head_position() - obj.position, 0)

    @admin.display(description="last error")
    def error_pretty(self, obj: ProjectionState) -> Any:
        return pretty_json(obj.last_error)


def _read_model_admin(model: type[Model]) -> type[TenantReadOnlyAdmin]:
    field_names = tuple(f.name for f in model._meta.concrete_fields)
    return type(
        f"{model.__name__}Admin",
        (TenantReadOnlyAdmin,),
        {"list_display": field_names[:8], "fields": field_names, "readonly_fields": field_names},
    )


# Every read model, read-only, straight from the projector registry.
for _read_model in get_read_models().values():
    tenant_admin_site.register(_read_model.model, _read_model_admin(_read_model.model))
