"""The Celery app. Tasks take ids and a schema name, never objects, and run in that schema."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
import structlog
from celery import Celery
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from django.conf import settings
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")


def _refuse_released_connection() -> None:
    """A worker must ride out a Redis outage instead of exiting (kombu 5.7.0).

    When the broker connection drops, Celery's consumer collects the connection (its
    transport is detached: `transport.client = None`) and then closes it again. A Redis
    channel whose first close was cut short by the dead socket is closed a second time;
    that close restores unacknowledged messages, which asks for a new Redis client, whose
    parameters come from `self.connection.client.hostname`, on the detached transport:
    `AttributeError: 'NoneType' object has no attribute 'hostname'`. It is not one of the
    connection errors Celery's `ignore_errors` swallows, so the worker exited
    ("Unrecoverable error"). Raising the connection error the situation really is lets
    the close be ignored and the consumer reconnect. The messages it could not restore
    are the ones Redis lost anyway; the sweep re-sends their work from the database.
    """
    original = kombu_redis.Channel._connparams
    if getattr(original, "_intent_patched", False):
        return

    def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> dict[str, object]:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was released")
        params: dict[str, object] = original(self, asynchronous=asynchronous)
        return params

    _connparams._intent_patched = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]


_refuse_released_connection()

app = Celery("intent_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["commands_app", "projections_app", "intent_project"])


@setup_logging.connect
def _use_the_project_logging(**kwargs: object) -> None:
    """Connected, this signal stops Celery from installing its own handlers (and from taking
    over the root logger): worker and beat log through settings.LOGGING like the web tier."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def _run_projections_inline(sender: Any = None, **kwargs: object) -> None:
    """A worker that consumes the projections queue runs a tenant's projections right
    after its commands' commit (intent_project/wakeups.py, `inline`). Sent in the main
    process once the queues are chosen and before the pool forks, so every pool process
    inherits the answer."""
    from intent_project import wakeups

    queues = set(sender.app.amqp.queues.consume_from) if sender is not None else set()
    wakeups.serve_inline(bool(settings.PROJECTIONS_INLINE) and "projections" in queues)


@worker_init.connect
def _settle_the_heap(**kwargs: object) -> None:
    """Start-up objects out of the collector's walks, before the pool forks (heap.py)."""
    from intent_project import heap

    heap.settle()


_heartbeat: threading.Thread | None = None


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **kwargs: object) -> None:
    """Tell `/ready/` this worker is alive and which queues it serves (readiness.py)."""
    global _heartbeat
    from intent_project import readiness

    queues = list(sender.app.amqp.queues.consume_from) if sender is not None else []
    _heartbeat = readiness.start_heartbeat(getattr(sender, "hostname", "worker"), queues)


@worker_shutting_down.connect
def _leave_readiness(**kwargs: object) -> None:
    """A worker that has begun to shut down takes no new work: it leaves `/ready/` then,
    not after its warm shutdown has finished the tasks in hand (which may outlast the
    supervisor's patience and end in SIGKILL, leaving the key until its TTL)."""
    from intent_project import readiness

    readiness.stop_heartbeat(_heartbeat, wait=False)


@worker_shutdown.connect
def _stop_heartbeat(**kwargs: object) -> None:
    from intent_project import readiness

    readiness.stop_heartbeat(_heartbeat)


@worker_process_shutdown.connect
def _process_exited(pid: int | None = None, **kwargs: object) -> None:
    """A prefork child ended: drop its live gauges from the metrics directory (metrics.py)."""
    from intent_project import metrics

    metrics.process_exited(pid or os.getpid())


@task_prerun.connect
def _bind_task(task_id: str = "", task: object = None, args: Any = (), **kwargs: object) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task=getattr(task, "name", None), task_id=task_id)
    # The project's tenant tasks take the schema name first (see tasks.py in each app).
    if args and isinstance(args[0], str) and args[0].startswith(settings.TENANT_SCHEMA_PREFIX):
        structlog.contextvars.bind_contextvars(tenant=args[0])


@task_postrun.connect
def _unbind_task(**kwargs: object) -> None:
    structlog.contextvars.clear_contextvars()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs: object) -> None:
    """What Django does around every web request: drop connections that errored (a
    PostgreSQL restart) or outlived CONN_MAX_AGE; keep the healthy ones for the next task."""
    from django.db import close_old_connections

    close_old_connections()
