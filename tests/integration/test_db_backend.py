"""Our database backend (intent_project/db/base.py) saves two round trips per request; these
tests pin down that it stays correct while doing so: the search_path is always the one the
selected tenant needs, and a connection PostgreSQL has ended is never handed out."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.usefixtures("live_db")


def _current_schemas() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schemas(false)")
        return list(cursor.fetchone()[0])


def _sets_of(block) -> list[str]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        block()
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SET search_path")]


def _request_for(tenant) -> None:  # type: ignore[no-untyped-def]
    """What the tenant middleware does at the start of each request."""
    connection.set_schema_to_public()
    connection.set_tenant(tenant)


def test_the_search_path_is_sent_once_per_connection_and_tenant(world):
    _request_for(world.acme)
    assert len(_sets_of(_current_schemas)) == 1

    _request_for(world.acme)  # the next request for the same tenant, same connection
    assert _sets_of(lambda: _current_schemas() == [world.acme.schema_name, "public"]) == []
    assert _current_schemas() == [world.acme.schema_name, "public"]

    _request_for(world.globex)
    assert len(_sets_of(_current_schemas)) == 1
    assert _current_schemas() == [world.globex.schema_name, "public"]

    connection.set_schema_to_public()
    assert _current_schemas() == ["public"]


def test_a_search_path_undone_by_a_rollback_is_sent_again(world):
    _request_for(world.acme)
    _current_schemas()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        _request_for(world.globex)
        assert _current_schemas() == [world.globex.schema_name, "public"]
        raise ZeroDivisionError  # PostgreSQL undoes the SET with the transaction

    _request_for(world.globex)
    assert _current_schemas() == [world.globex.schema_name, "public"]


def test_a_search_path_undone_by_a_savepoint_rollback_is_sent_again(world):
    _request_for(world.acme)
    with transaction.atomic():
        _current_schemas()
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            _request_for(world.globex)
            assert _current_schemas() == [world.globex.schema_name, "public"]
            raise ZeroDivisionError
        _request_for(world.globex)
        assert _current_schemas() == [world.globex.schema_name, "public"]
        _request_for(world.acme)
        assert _current_schemas() == [world.acme.schema_name, "public"]


def _admin_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def test_an_idle_connection_passes_the_health_check_without_a_query(world):
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'health-check-marker'")

    assert connection.is_usable()

    with _admin_connection() as admin:
        last = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert last == ("SELECT 'health-check-marker'",)  # no SELECT 1 was sent


def test_a_connection_the_server_ended_fails_the_health_check_and_is_replaced(world):
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with _admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not connection.is_usable()

    # What Django does before the first query of a request (CONN_HEALTH_CHECKS):
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    _request_for(world.acme)
    assert _current_schemas() == [world.acme.schema_name, "public"]
    assert connection.connection.info.backend_pid != pid
