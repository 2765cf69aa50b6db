"""The product's settings with the bench's public URLs (bench.ceiling.urls) in front."""

from intent_project.settings import *  # noqa: F403

PUBLIC_SCHEMA_URLCONF = "bench.ceiling.urls"
