"""The product's public URLs plus the bare view."""

from django.urls import path

from bench.ceiling.views import BareCommandView
from intent_project.urls_public import urlpatterns as public_urlpatterns

urlpatterns = [path("bench/ceiling/", BareCommandView.as_view(), name="bench-ceiling"), *public_urlpatterns]
