"""Routes inside a tenant. django-tenants mounts them under /t/<tenant>/."""

from django.urls import path

from commands_app import api as commands_api
from events_app import api as events_api
from intent_project.admin_sites import tenant_admin_site
from intent_project.api import views
from projections_app import api as projections_api

api_patterns = [
    path("api/", views.TenantEntryPointsView.as_view(), name="tenant-api"),
    path("api/commands/", commands_api.CommandListView.as_view(), name="commands"),
    path(
        "api/commands/<uuid:command_id>/",
        commands_api.CommandDetailView.as_view(),
        name="command-detail",
    ),
    path("api/events/", events_api.EventListView.as_view(), name="events"),
    path("api/events/stream/", events_api.EventStreamView.as_view(), name="events-stream"),
    path("api/events/<uuid:event_id>/", events_api.EventDetailView.as_view(), name="event-detail"),
    path("api/traces/<uuid:correlation_id>/", events_api.TraceView.as_view(), name="trace"),
    path(
        "api/commands/<uuid:command_id>/stream/",
        commands_api.CommandStreamView.as_view(),
        name="command-stream",
    ),
    path(
        "api/commands/<uuid:command_id>/retry/", commands_api.CommandRetryView.as_view(), name="command-retry"
    ),
    path("api/projections/", projections_api.ProjectionListView.as_view(), name="projections"),
    path(
        "api/projections/<str:name>/",
        projections_api.ProjectionDetailView.as_view(),
        name="projection-detail",
    ),
    path(
        "api/projections/<str:name>/resume/",
        projections_api.ProjectionResumeView.as_view(),
        name="projection-resume",
    ),
    path(
        "api/projections/<str:name>/skip/",
        projections_api.ProjectionSkipView.as_view(),
        name="projection-skip",
    ),
    path(
        "api/projections/<str:name>/dead-letters/<int:letter_id>/replay/",
        projections_api.DeadLetterReplayView.as_view(),
        name="dead-letter-replay",
    ),
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
    # JSON links for API clients; a browser asking for /t/<tenant>/ is sent to the tenant admin.
    path("", views.TenantRootView.as_view(), name="tenant-root"),
    *api_patterns,
    path("admin/", tenant_admin_site.urls),
]

handler400 = "intent_project.api.errors.handler400"
handler403 = "intent_project.api.errors.handler403"
handler404 = "intent_project.api.errors.handler404"
handler500 = "intent_project.api.errors.handler500"
