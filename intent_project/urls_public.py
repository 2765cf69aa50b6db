"""Routes outside any tenant: entry points, auth, users, tenants, registry, health, docs, platform admin."""

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from intent_project.api import views
from intent_project.api.metrics import metrics_view

urlpatterns = [
    # JSON links for API clients; a browser asking for `/` is sent to the API docs.
    path("", views.SiteRootView.as_view(), name="root"),
    path("api/", views.EntryPointsView.as_view(), name="api-root"),
    path("health/", views.health, name="health"),
    path("ready/", views.ready, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("api/auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("api/auth/logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("api/auth/logout-all/", views.LogoutAllView.as_view(), name="auth-logout-all"),
    path("api/users/", views.UserListView.as_view(), name="users"),
    path("api/tenants/", views.TenantListView.as_view(), name="tenants"),
    path("api/tenants/<str:slug>/export/", views.TenantExportView.as_view(), name="tenant-export"),
    path("api/tenants/<str:slug>/members/", views.MemberListView.as_view(), name="tenant-members"),
    path(
        "api/tenants/<str:slug>/members/<str:username>/",
        views.MemberDetailView.as_view(),
        name="tenant-member",
    ),
    path("api/registry/", views.RegistryView.as_view(), name="registry"),
    path("api/schema/", SpectacularAPIView.as_view(urlconf="intent_project.urls_docs"), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
]

handler400 = "intent_project.api.errors.handler400"
handler403 = "intent_project.api.errors.handler403"
handler404 = "intent_project.api.errors.handler404"
handler500 = "intent_project.api.errors.handler500"
