"""Only for OpenAPI generation: public routes plus tenant routes with their /t/{tenant}/ prefix."""

from django.urls import include, path

from intent_project.urls_public import urlpatterns as public_patterns
from intent_project.urls_tenant import api_patterns

urlpatterns = [
    *[p for p in public_patterns if not str(getattr(p, "pattern", "")).startswith(("admin/", "health/", "ready/", "metrics"))],
    path("t/<slug:tenant>/", include(api_patterns)),
]
