"""django-tenants' PostgreSQL backend, minus two round trips that every request paid.

1. **`SET search_path` once per connection and schema, not once per request.**
   django-tenants forgets which search_path the session has each time a tenant is selected
   (`set_tenant`, which its middleware calls twice per request), so every request re-sends
   `SET search_path` even when the same persistent connection already has it. We remember
   what the session actually has (`_session_search_path`) and keep it across `set_tenant`
   while it is still the one wanted. It is forgotten wherever PostgreSQL may have undone it
   (closing, rolling back a transaction or to a savepoint, a failed SET), exactly where
   django-tenants itself forgets.

2. **A health check that does not cost a query.** With `CONN_HEALTH_CHECKS` Django sends
   `SELECT 1` before the first query of every request on a persistent connection. An idle
   connection has nothing to read; when PostgreSQL ends a session (a restart, a terminated
   backend) it sends an error and closes the socket, which makes the socket readable. So an
   idle connection whose socket is not readable is usable; one that is readable, or is not
   idle, gets Django's `SELECT 1` as before.
"""

from __future__ import annotations

import select
from typing import Any

from django_tenants.postgresql_backend import base as tenants_base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    _session_search_path: list[str] | None = None

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        if (
            self._session_search_path is not None
            and self._session_search_path == self._get_cursor_search_paths()
        ):
            self.search_path_set_schemas = self._session_search_path

    def _handle_search_path(self, cursor: Any = None) -> None:
        super()._handle_search_path(cursor)
        if not self._setting_search_path:
            self._session_search_path = self.search_path_set_schemas

    def close(self) -> None:
        self._session_search_path = None
        super().close()

    def rollback(self) -> None:
        self._session_search_path = None
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        try:
            super().savepoint_rollback(sid)
        finally:
            self._session_search_path = None

    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed:
            return False
        if conn.info.transaction_status == TransactionStatus.IDLE and not _has_data(conn.fileno()):
            return True
        return bool(super().is_usable())


def _has_data(fd: int) -> bool:
    """Is there anything to read on the socket (or is it closed)? True when unsure."""
    try:
        poller = select.poll()  # not select(): no limit on the descriptor's number
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
