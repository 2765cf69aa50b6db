"""gunicorn settings for the web tier (`make run`, the benchmarks, the fault tests).

    gunicorn -c python:intent_project.gunicorn_conf

Threaded workers (gthread): a request holding `?wait=` parks a thread, not a process, and
idle keep-alive connections park no thread at all. Several processes let the web tier use
more than one core; each runs its own notification listener (started lazily, after the
fork, since the app is not preloaded).

Environment: `PORT` (8000), `WEB_BIND` (127.0.0.1; 0.0.0.0 to listen everywhere),
`WEB_WORKERS` (2: processes), `WEB_THREADS` (32: requests in progress per process, waits
included), `WEB_ACCESS_LOG` (off; `-` for stdout).
"""

import os

bind = f"{os.environ.get('WEB_BIND', '127.0.0.1')}:{int(os.environ.get('PORT', '8000'))}"
wsgi_app = "intent_project.wsgi:application"
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "32"))
keepalive = 30  # seconds an idle client connection stays open (API clients reuse them)
timeout = 60  # a worker silent this long is restarted (waits are at most 30 s)
graceful_timeout = 10
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "intent-web"
