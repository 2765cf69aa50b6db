"""`python manage.py runserver`, as the README offers it for development, over the test database.

A burst of POSTs from a few clients, each on a new connection (curl in a loop, `requests`
without a session), is one runserver thread per request. Each thread opened its own
persistent database connection and nothing closed it when the thread ended, so the burst
filled PostgreSQL's max_connections and was answered 503 (and 500 with Django's traceback
page under DEBUG). And a database error before any view (the tenant lookup) answers the
API's 503 shape, never that page.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from knox.models import AuthToken

from devenv import Proc, free_port, procs
from intent_project.tenants.services import set_membership
from tests.conftest import app_env
from tests.faults.cluster import ApiClient

CLIENTS, POSTS_PER_CLIENT = 8, 200
# Marks the server's own database sessions in pg_stat_activity.
APPLICATION_NAME = f"runserver-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def runserver(world: Any, isolated_redis: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The README's command, under DEBUG (how it is used in development; it is also where a
    database error before the view used to show Django's traceback page)."""
    env = app_env()
    parts = urlsplit(env["DATABASE_URL"])
    query = "&".join(q for q in (parts.query, f"application_name={APPLICATION_NAME}") if q)
    port = free_port()
    env.update(
        DATABASE_URL=urlunsplit(parts._replace(query=query)),
        DEBUG="1",
        TENANT_CACHE_SECONDS="0",  # every request looks its tenant up: the first query of each
    )
    proc = Proc(
        "runserver",
        procs.manage("runserver", "--noreload", f"127.0.0.1:{port}"),
        env,
        Path(tmp_path_factory.mktemp("runserver")) / "runserver.log",
    )
    proc.start()
    try:
        _wait_healthy(port, proc)
        yield port
    finally:
        proc.stop()


def _wait_healthy(port: int, proc: Proc, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = ApiClient(port)
        if client.request("GET", "/health/", timeout=5).status == 200:
            client.close()
            return
        if not proc.running():
            raise RuntimeError(f"runserver exited:\n{proc.output()[-3000:]}")
        time.sleep(0.3)
    raise RuntimeError(f"runserver not healthy:\n{proc.output()[-3000:]}")


def _server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME]
        )
        return int(cursor.fetchone()[0])


@pytest.fixture
def member_token(fresh_tenant: Any) -> Iterator[str]:
    """A developer of a tenant of its own: the burst's commands stay out of acme."""
    user = get_user_model().objects.create_user("rs-" + uuid.uuid4().hex[:10], password=None)
    set_membership(user, fresh_tenant, "developer")
    yield AuthToken.objects.create(user=user)[1]
    user.delete()


def test_a_burst_of_posts_from_eight_clients_gets_no_5xx_and_bounded_connections(
    runserver, fresh_tenant, member_token
):
    # Due in a day: stored like any command, and no worker of a later test runs them.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    command = {"type": "logMessage", "payload": {"message": "burst"}, "not_before": later}
    url = f"/t/{fresh_tenant.slug}/api/commands/"

    def client() -> Counter[int]:
        api, statuses = ApiClient(runserver, member_token), Counter[int]()
        for _ in range(POSTS_PER_CLIENT):
            statuses[api.request("POST", url, command).status] += 1
            api.close()  # the next POST on a new connection: a new runserver thread
        return statuses

    peak = 0
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client) for _ in range(CLIENTS)]
        while not all(f.done() for f in futures):
            peak = max(peak, _server_connections())
            time.sleep(0.02)
        statuses = sum((f.result() for f in futures), Counter[int]())

    print(f"runserver burst: {dict(statuses)}, at most {peak} server connections")
    assert statuses == {202: CLIENTS * POSTS_PER_CLIENT}
    # One per request thread in flight (one per client), not one per request ever served.
    assert 0 < peak <= 2 * CLIENTS  # a finishing thread may still hold its own a moment
    deadline = time.monotonic() + 10
    while _server_connections() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _server_connections() == 0  # every finished thread's connection is closed


def _assert_unavailable(response: Any) -> None:
    assert response.status == 503, (response.status, str(response.body)[:500])
    error = response.body["error"]
    assert error["code"] == "service_unavailable" and error["message"], error
    assert error["request_id"] == response.headers["x-request-id"]
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "1"


def test_a_database_refusing_connections_is_a_503_before_any_view(runserver, world, live_db):
    database = connection.ops.quote_name(connection.settings_dict["NAME"])
    token = world["dave"].token
    # No new session for the app's role (this test's own stays open): what the server's next
    # request thread sees when PostgreSQL is full ("too many connections").
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {database} CONNECTION LIMIT 0")
    try:
        tenant_api = ApiClient(runserver, token).request("GET", "/t/acme/api/commands/")
        login = ApiClient(runserver).request(
            "POST", "/api/auth/token/", {"username": "dave", "password": world["dave"].password}
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {database} CONNECTION LIMIT -1")

    _assert_unavailable(tenant_api)
    _assert_unavailable(login)
    assert ApiClient(runserver, token).request("GET", "/t/acme/api/commands/").status == 200
