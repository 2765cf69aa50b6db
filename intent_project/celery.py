"""The Celery app. Tasks take ids and a schema name, never objects, and run in that schema."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")

app = Celery("intent_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["commands_app", "projections_app", "intent_project"])
