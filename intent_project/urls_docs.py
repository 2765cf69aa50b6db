"""Only for OpenAPI generation: public routes plus tenant routes with their /t/{tenant}/ prefix."""

from django.urls import include, path

from intent_project.urls_public import urlpatterns as public_patterns
from intent_project.urls_tenant import api_patterns

urlpatterns = [
    # The API's own routes; `/` (a redirect for browsers), the admin, health, ready and
    # metrics are not part of it.
    *[p for p in public_patterns if str(getattr(p, "pattern", "")).startswith("api/")],
    path("t/<slug:tenant>/", include(api_patterns)),
]
