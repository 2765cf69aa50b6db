"""The Celery app. Tasks take ids and a schema name, never objects, and run in that schema."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")

app = Celery("intent_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["commands_app", "projections_app", "intent_project"])


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs: object) -> None:
    """What Django does around every web request: drop connections that errored (a
    PostgreSQL restart) or outlived CONN_MAX_AGE; keep the healthy ones for the next task."""
    from django.db import close_old_connections

    close_old_connections()
