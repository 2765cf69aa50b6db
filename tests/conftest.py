"""Shared fixtures: tenants `acme` and `globex`, personas, and real app processes.

Tenants and users are created once per session and committed (schema creation cannot be
rolled back cheaply). API tests then run inside a rolled-back transaction (`db`);
integration tests that need real commits (other threads, a worker process) use
`live_db`, which commits for real, so they assert on their own ids, never on global counts.
"""

from __future__ import annotations

import io
import logging
import logging.config
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from devenv import Proc, procs
from intent_project import logs

ROOT = Path(__file__).resolve().parent.parent

# Tests use their own Redis database so a `make run` worker sharing the same Redis server
# never consumes (and misroutes) a test's messages; under pytest-xdist each test process
# gets its own (15, 13, ...: the one below is for test_plain_worker), as it gets its own
# test database, so no process's worker runs another's tasks against the wrong database.
_XDIST_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
TEST_REDIS_DB = int(os.environ.get("INTENT_TEST_REDIS_DB", str(15 - 2 * _XDIST_INDEX)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, keep each module on one test process (its module-scoped
    web servers and workers start once), run the fault tier's clusters one at a time, and
    keep the browser tier together (its app and browser start once for the tier)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            tier = next((t for t in ("faults", "browser") if item.nodeid.startswith(f"tests/{t}/")), None)
            group = tier or item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(group))


BROWSER_ARTIFACTS = ROOT / ".var" / "test-artifacts" / "browser"


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Where the browser tier left its screenshots, when it ran (in whichever process)."""
    started = config.stash.get(_STARTED, None)
    shots = list(BROWSER_ARTIFACTS.glob("*.png")) if BROWSER_ARTIFACTS.is_dir() else []
    if started is not None and any(path.stat().st_mtime >= started for path in shots):
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(shots)} screenshots in {BROWSER_ARTIFACTS}")


_STARTED = pytest.StashKey[float]()


def _test_redis_url() -> str:
    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{TEST_REDIS_DB}", parts.query, parts.fragment))


@pytest.fixture(scope="session", autouse=True)
def _no_lookup_caches() -> None:
    """Tests create and roll back tenants all the time; a per-process cache would serve
    rows that no longer exist. tests/api/test_lookup_caches.py turns it on."""
    settings.TENANT_CACHE_SECONDS = 0


@pytest.fixture(scope="session", autouse=True)
def _shared_cache_without_limits() -> None:
    """The shared cache (throttle counters) lives in the tests' own Redis database, and no
    throttle is on unless a test sets its rate (tests/api/test_throttling.py), so tests
    never throttle each other by accident."""
    from django.core.cache import caches
    from django.core.signals import setting_changed

    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": _test_redis_url()},
    }
    setting_changed.send(sender=None, setting="CACHES", value=settings.CACHES, enter=True)
    settings.THROTTLE_RATES = {scope: "" for scope in settings.THROTTLE_RATES}
    assert caches["default"]._servers == [_test_redis_url()]  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def isolated_redis() -> Iterator[None]:
    from intent_project.celery import app
    from projections_app import tasks as projection_tasks

    url = _test_redis_url()
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    # A test that published before this ran (e.g. an operator action's immediate wake-up)
    # left the app a producer pool connected to the old URL; tasks published through it
    # would never reach the test workers.
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
    projection_tasks._redis.cache_clear()  # the shared wake-up client (intent_project.wakeups)
    import redis

    redis.Redis.from_url(url).flushdb()
    yield


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest,
    django_test_environment: None,
    django_db_blocker: Any,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    """Always create the test database, whichever tier runs.

    pytest-django creates it only for aliases that collected tests mark with `django_db`;
    our integration tests commit for real through `live_db` instead, so running that tier
    alone would otherwise talk to the configured database itself.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, aliases={"default"}
        )
    yield
    from intent_project.notifications import stop_listener

    stop_listener()  # its connection would keep the test database from being dropped
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=request.config.option.verbose)


@dataclass
class Persona:
    username: str
    password: str
    user: Any
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        return client


@dataclass
class World:
    acme: Any
    globex: Any
    personas: dict[str, Persona]

    def __getitem__(self, name: str) -> Persona:
        return self.personas[name]


# name -> (is_staff, is_superuser, {tenant slug: role})
PERSONAS: dict[str, tuple[bool, bool, dict[str, str]]] = {
    "alice": (False, False, {"acme": "tester"}),  # tester at acme
    "dave": (False, False, {"acme": "developer"}),  # developer at acme
    "sam": (False, False, {"acme": "system"}),  # the system role at acme
    "vera": (False, False, {"acme": "viewer"}),  # read-only at acme
    "ada": (True, False, {"acme": "admin"}),  # staff, tenant admin of acme
    "bob": (False, False, {"globex": "developer"}),  # developer at globex only
    "stan": (True, False, {}),  # staff without any membership
    "root": (True, True, {}),  # platform superuser
    "bea": (False, False, {"acme": "banker"}),  # banker at acme
    "tom": (False, False, {"acme": "teller"}),  # teller at acme
    "opal": (True, False, {}),  # platform operator: staff with the permissions in PERMISSIONS
    "abe": (False, False, {"acme": "admin"}),  # a second acme admin, not staff
}
# name -> Django permissions granted to that persona (platform power without superuser)
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "opal": (
        "tenants.add_tenant",
        "tenants.view_tenant",
        "auth.add_user",
        "tenants.add_membership",
        "tenants.change_membership",
        "tenants.delete_membership",
        "tenants.view_membership",
    ),
}


@pytest.fixture(scope="session")
def world(django_db_setup: Any, django_db_blocker: Any) -> World:
    from django.contrib.auth.models import Permission

    from intent_project.tenants.models import Tenant
    from intent_project.tenants.services import create_tenant, set_membership

    with django_db_blocker.unblock():
        # Tests commit for real; never against a database that is not a test database.
        assert str(connection.settings_dict["NAME"]).startswith("test_"), connection.settings_dict["NAME"]
        tenants = {}
        for slug in ("acme", "globex"):
            tenants[slug] = Tenant.objects.filter(slug=slug).first() or create_tenant(slug, slug.capitalize())
        connection.set_schema_to_public()
        User = get_user_model()
        personas = {}
        for name, (staff, superuser, roles) in PERSONAS.items():
            password = f"{name}-password-123"
            user = User.objects.filter(username=name).first()
            if user is None:
                user = User.objects.create_user(
                    name, f"{name}@example.com", password, is_staff=staff, is_superuser=superuser
                )
            for slug, role in roles.items():
                set_membership(user, tenants[slug], role)
            for perm in PERMISSIONS.get(name, ()):
                app_label, codename = perm.split(".")
                user.user_permissions.add(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )
            _, token = AuthToken.objects.create(user=user)
            personas[name] = Persona(name, password, user, token)
    return World(tenants["acme"], tenants["globex"], personas)


@pytest.fixture(autouse=True)
def _back_to_public() -> Iterator[None]:
    yield
    connection.set_schema_to_public()


@pytest.fixture
def live_db(world: World, django_db_blocker: Any, isolated_redis: None) -> Iterator[None]:
    """Database access without a wrapping transaction: commits are real and visible to
    other threads and processes."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


@pytest.fixture
def fresh_tenant(live_db: None) -> Any:
    """A brand-new tenant for tests that count rows (committed data outlives tests)."""
    from intent_project.tenants.services import create_tenant

    tenant = create_tenant("t" + uuid.uuid4().hex[:12], "Fresh")
    connection.set_schema_to_public()
    return tenant


# --- real app processes -------------------------------------------------------------------
def app_env(**extra: str) -> dict[str, str]:
    """The environment of the app processes a test starts: ours, on the test database and
    the tests' Redis database, with fast retries."""
    parts = urlsplit(settings.DATABASE_URL)
    database = "/" + str(settings.DATABASES["default"]["NAME"])
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit((parts.scheme, parts.netloc, database, parts.query, parts.fragment)),
        "REDIS_URL": settings.REDIS_URL,
        "COMMAND_RETRY_BACKOFF_SECONDS": "0.1",
        "COMMAND_STALE_AFTER_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_worker(log_path: Path, *options: str, **env: str) -> Proc:
    """`celery -A intent_project worker` (every queue, unless `-Q` is among `options`), ready."""
    argv = procs.worker("--concurrency", "2", *options)
    return Proc("worker", argv, app_env(**env), log_path).start().wait_for("ready.", 60)


@pytest.fixture(scope="module")
def celery_worker(
    world: World, isolated_redis: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    """A worker for the module that asks for one, stopped after it: a worker left running
    would take the commands that later in-process tests submit and process themselves,
    making them depend on which tests ran before."""
    worker = start_worker(tmp_path_factory.mktemp("worker") / "worker.log")
    yield worker
    worker.stop()


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The project's JSON configuration, writing to a buffer; the test's logging restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logging.config.dictConfig(logs.logging_config("json", "INFO", colors=False))
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield stream
    finally:
        structlog.contextvars.clear_contextvars()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
