"""Routes inside a tenant. django-tenants mounts them under /t/<tenant>/."""

from django.urls import path

from commands_app import api as commands_api
from events_app import api as events_api
from intent_project.admin_sites import tenant_admin_site
from projections_app import api as projections_api

api_patterns = [
    path("api/commands/", commands_api.CommandListView.as_view(), name="commands"),
    path(
        "api/commands/<uuid:command_id>/",
        commands_api.CommandDetailView.as_view(),
        name="command-detail",
    ),
    path("api/events/", events_api.EventListView.as_view(), name="events"),
    path("api/events/<uuid:event_id>/", events_api.EventDetailView.as_view(), name="event-detail"),
    path("api/projections/", projections_api.ProjectionListView.as_view(), name="projections"),
    path(
        "api/read-models/<str:name>/",
        projections_api.ReadModelListView.as_view(),
        name="read-model-list",
    ),
    path(
        "api/read-models/<str:name>/<str:key>/",
        projections_api.ReadModelDetailView.as_view(),
        name="read-model-detail",
    ),
]

urlpatterns = [
    *api_patterns,
    path("admin/", tenant_admin_site.urls),
]

handler400 = "intent_project.api.errors.handler400"
handler403 = "intent_project.api.errors.handler403"
handler404 = "intent_project.api.errors.handler404"
handler500 = "intent_project.api.errors.handler500"
