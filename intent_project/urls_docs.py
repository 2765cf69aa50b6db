"""Only for OpenAPI generation: public routes plus tenant routes with their /t/{tenant}/ prefix.

Read models are listed one by one (each with its own row type, key and filters) where the
tenant's urlconf has one route for all of them.
"""

from django.urls import include, path

from intent_project.api.metrics import MetricsDocumented
from intent_project.urls_public import urlpatterns as public_patterns
from intent_project.urls_tenant import api_patterns
from projections_app.api import documented_read_model_views
from projections_app.registry import get_read_models

_ONE_ROUTE_FOR_ALL = {"read-model-list", "read-model-detail"}


def _read_model_patterns() -> list:
    patterns = []
    for name in sorted(get_read_models()):
        listing, detail = documented_read_model_views(name)
        patterns.append(path(f"api/read-models/{name}/", listing.as_view()))
        patterns.append(path(f"api/read-models/{name}/<str:key>/", detail.as_view()))
    return patterns


urlpatterns = [
    # The API's own routes and the metrics scrape; `/` (a redirect for browsers), the admin,
    # health and ready are not part of it.
    *[p for p in public_patterns if str(getattr(p, "pattern", "")).startswith("api/")],
    path("metrics", MetricsDocumented.as_view()),
    path(
        "t/<slug:tenant>/",
        include([*[p for p in api_patterns if p.name not in _ONE_ROUTE_FOR_ALL], *_read_model_patterns()]),
    ),
]
