"""gunicorn settings for the web tier (`make run`, the benchmarks, the fault tests).

    gunicorn -c python:intent_project.gunicorn_conf

Asynchronous workers (uvicorn, via uvicorn-worker) running the front door
(`intent_project/asgi.py`): ordinary requests run the Django app in a pool of `WEB_THREADS`
threads per process (each keeping its database connection), and waiting requests
(`?wait=`, `?min_position=&wait=`) are parked on the event loop between their runs, so
hundreds of them hold no thread and cannot starve other requests. Several processes let
the web tier use more than one core; each runs its own notification listener (started
at the worker's start-up, after the fork, since the app is not preloaded).

Environment: `PORT` (8000), `WEB_BIND` (127.0.0.1; 0.0.0.0 to listen everywhere),
`WEB_WORKERS` (2: processes), `WEB_THREADS` (32: ordinary requests in progress per
process; read by the app's settings), `WEB_ACCESS_LOG` (off; `-` for stdout).

`gunicorn intent_project.wsgi` (and `manage.py runserver`) still serve the same app as
plain WSGI, with waits that block their thread: fine for development, not for production.
"""

import os

bind = f"{os.environ.get('WEB_BIND', '127.0.0.1')}:{int(os.environ.get('PORT', '8000'))}"
wsgi_app = "intent_project.asgi:application"
worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_WORKERS", "2"))
keepalive = 30  # seconds an idle client connection stays open (API clients reuse them)
timeout = 60  # a worker whose event loop is silent this long is restarted
graceful_timeout = 10
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "intent-web"


def child_exit(server: object, worker: object) -> None:
    """A web process ended: drop its live gauges from the metrics directory (metrics.py)."""
    from intent_project import metrics

    metrics.process_exited(worker.pid)  # type: ignore[attr-defined]
