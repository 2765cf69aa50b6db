"""`python manage.py runserver`: Django's development server (static files included), whose
request threads close their database connections when they end.

runserver serves each client connection in a new thread, and a database connection belongs
to the thread that opened it. With persistent connections (`DB_CONN_MAX_AGE`, kept for
gunicorn's and Celery's long-lived threads) nothing closed the connection of a finished
thread until the garbage collector happened to collect it, so a burst from a few clients
piled up hundreds of idle connections and PostgreSQL refused the rest ("sorry, too many
clients already"). Django's own threaded test server (LiveServerTestCase) closes them at the
end of each request thread; runserver's server does not, so this one does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.staticfiles.management.commands.runserver import Command as StaticFilesRunserver
from django.core.servers.basehttp import WSGIServer
from django.db import connections


class ConnectionClosingWSGIServer(WSGIServer):
    def close_request(self, request: Any) -> None:
        # socketserver calls this in the thread that served the client connection, after its
        # last request: the connections closed are that thread's own, and it opens no more.
        connections.close_all()
        super().close_request(request)


class Command(StaticFilesRunserver):
    server_cls = ConnectionClosingWSGIServer
