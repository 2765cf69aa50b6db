"""The browser tier: a real Chromium (Debian's `chromium` package, driven by Playwright)
against the app as `make run` starts it, gunicorn with the project's conf and a Celery
worker, on the test database.

Everything here is package-scoped: one web tier, one worker and one browser serve the
whole tier (tests/conftest.py keeps the tier on one xdist process), and stop when its
last test has run, so no worker is left to take the commands of later in-process tests.

For a new test:

- `page`: a browser tab at 1400x1000, logged in as `stella`, staff and tenant admin of
  `initech` (a tenant of this tier's own, so its lists hold only what the tier made);
  `page_as("name")` one logged in as any member made with `app.member(...)`;
- `app.url("/t/initech/admin/")`, `app.admin("projections_app/accountbalance/")`;
- `app.send("openAccount", {...})`: a command through the API, returned once final
  (`processed` unless `expect=` says otherwise); `app.wait_projected(name, command)`;
- `shot(page, "name")`: a screenshot in the run's artifact folder (printed at the end).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from knox.models import AuthToken
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from commands_app.models import FINAL_STATUSES
from devenv import Proc
from tests.conftest import BROWSER_ARTIFACTS, World, start_worker
from tests.integration.web import WebTier

CHROMIUM = Path(os.environ.get("BROWSER_CHROMIUM", "/usr/bin/chromium"))
# A lock for the whole machine, not the checkout: apt and dpkg are the machine's, and two
# test processes (xdist, or two checkouts' `make test`) running apt at once would have the
# second fail on dpkg's own lock instead of waiting for the first.
INSTALL_LOCK = Path(tempfile.gettempdir()) / "intent-browser-chromium.lock"
ARTIFACTS = BROWSER_ARTIFACTS
VIEWPORT = {"width": 1400, "height": 1000}
TENANT = "initech"
STAFF = "stella"


def ensure_chromium() -> Path:
    """Chromium from Debian's archive: found, or installed with apt-get (as root)."""
    if CHROMIUM.exists():
        return CHROMIUM
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if CHROMIUM.exists():  # the process that held the lock installed it
            return CHROMIUM
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.fail(
                f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
                "(or set BROWSER_CHROMIUM to a Chromium binary)"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        if not CHROMIUM.exists():
            pytest.fail(f"apt-get installed chromium, but there is no {CHROMIUM}")
    return CHROMIUM


def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """A screenshot of what the tab shows now, as ARTIFACTS/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@dataclass
class Member:
    username: str
    password: str
    user: Any
    token: str


@dataclass
class BrowserApp:
    """The running app of the tier, its tenant, and helpers to drive it over HTTP."""

    web: WebTier
    worker: Proc
    tenant: Any
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def admin(self, path: str = "") -> str:
        """The tenant admin's URL for `path` (relative to /t/<tenant>/admin/)."""
        return self.url(f"/t/{self.tenant.slug}/admin/{path}")

    def member(
        self, username: str, role: str | None, *, staff: bool = True, superuser: bool = False
    ) -> Member:
        """A user (made once) with `role` in the tier's tenant (None: no membership)."""
        from intent_project.tenants.services import set_membership

        if username in self.members:
            return self.members[username]
        password = f"{username}-password-123"
        users = get_user_model().objects
        user = users.filter(username=username).first() or users.create_user(
            username, f"{username}@example.com", password, is_staff=staff, is_superuser=superuser
        )
        if role is not None:
            set_membership(user, self.tenant, role)
        _, token = AuthToken.objects.create(user=user)
        connection.set_schema_to_public()
        self.members[username] = Member(username, password, user, token)
        return self.members[username]

    def send(
        self,
        type_name: str,
        payload: dict[str, Any],
        *,
        as_user: str = STAFF,
        expect: str | None = "processed",
    ) -> dict[str, Any]:
        """Send a command through the API and return it once final: `processed` means every
        projection applied its events too (a saga's later commands are not awaited)."""
        token = self.members[as_user].token
        status, body, _ = self.web.request(
            "POST",
            f"/t/{self.tenant.slug}/api/commands/?wait=30",
            token,
            {"type": type_name, "payload": payload},
        )
        assert status in (200, 202), body
        deadline = time.monotonic() + 60
        while body["status"] not in FINAL_STATUSES and time.monotonic() < deadline:
            status, body, _ = self.web.request(
                "GET", f"/t/{self.tenant.slug}/api/commands/{body['id']}/?wait=10", token
            )
            assert status == 200, body
        if expect is not None:
            assert body["status"] == expect, body
        return dict(body)

    def wait_projected(self, read_model: str, command: dict[str, Any], *, as_user: str = STAFF) -> None:
        """Hold until `read_model` includes the events `command` recorded (read-your-writes):
        for what a command's saga does later, e.g. a transfer's settlement."""
        positions = [event["position"] for event in (command.get("result") or {}).get("events", [])]
        if not positions:
            return
        status, body, _ = self.web.request(
            "GET",
            f"/t/{self.tenant.slug}/api/read-models/{read_model}/?min_position={max(positions)}&wait=30&limit=1",
            self.members[as_user].token,
        )
        assert status == 200, body


@pytest.fixture(scope="package")
def chromium() -> Path:
    return ensure_chromium()


@pytest.fixture(scope="package")
def app(
    world: World, isolated_redis: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserApp]:
    """Tenant `initech` with `stella` (staff, its tenant admin), the web tier and a worker."""
    from intent_project.tenants.models import Tenant
    from intent_project.tenants.services import create_tenant

    with django_db_blocker.unblock():
        tenant = Tenant.objects.filter(slug=TENANT).first() or create_tenant(TENANT, "Initech")
        connection.set_schema_to_public()
        logs = tmp_path_factory.mktemp("browser-app")
        web = WebTier(logs / "web.log").start()
        worker = start_worker(logs / "worker.log")
        running = BrowserApp(web, worker, tenant)
        running.member(STAFF, "admin")
    try:
        yield running
    finally:
        worker.stop()
        web.stop()


@pytest.fixture(autouse=True)
def _committed(live_db: None, playwright: Playwright) -> Iterator[None]:
    """Browser tests read and write the database the app processes use: commits are real.

    While Playwright's loop runs, Django keeps this thread's database connections apart
    from the ones it opens without a loop (asgiref's Local turns into a context variable),
    so the connections a test opens are closed here, where the loop still runs: once it
    has stopped nobody could reach them, and the test database could not be dropped.
    """
    yield
    connections.close_all()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    # Playwright's sync API keeps an asyncio loop running in the test's thread, so Django
    # would take the tests' own (synchronous) ORM calls for calls from async code and
    # refuse them (SynchronousOnlyOperation).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(playwright: Playwright, chromium: Path) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(chromium))
    yield launched
    launched.close()


@pytest.fixture(scope="package")
def _artifacts() -> Path:
    """This run's screenshots only: the folder is emptied when the tier starts."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def log_in(page: Page, app: BrowserApp, member: Member, login_path: str | None = None) -> None:
    """Through the admin's own login form, as a person would."""
    page.goto(app.url(login_path or f"/t/{app.tenant.slug}/admin/login/"))
    page.fill("#id_username", member.username)
    page.fill("#id_password", member.password)
    page.click("input[type=submit]")
    page.wait_for_load_state()


@pytest.fixture(scope="package")
def _sessions(browser: Browser, app: BrowserApp) -> dict[str, Any]:
    """Each member's logged-in browser state, made once by logging in through the form."""
    return {}


def _new_context(browser: Browser, app: BrowserApp, state: Any = None) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT, base_url=app.base_url, storage_state=state)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def new_page(
    browser: Browser, app: BrowserApp, _artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Page]]:
    """Opens fresh tabs (each in its own context, logged in as nobody); closed after the test.
    A test that fails leaves a screenshot of each of its tabs (FAILED-<test>-<n>.png)."""
    contexts: list[BrowserContext] = []

    def open_page(state: Any = None) -> Page:
        context = _new_context(browser, app, state)
        contexts.append(context)
        return context.new_page()

    yield open_page
    report = getattr(request.node, "rep_call", None)
    for n, context in enumerate(contexts):
        if report is not None and report.failed:
            for tab in context.pages:
                shot(tab, f"FAILED-{request.node.name}-{n}")
        context.close()


@pytest.fixture
def page_as(
    new_page: Callable[..., Page], app: BrowserApp, _sessions: dict[str, Any]
) -> Callable[[str], Page]:
    """`page_as("name")`: a tab logged in as that member (see `app.member`)."""

    def logged_in(username: str) -> Page:
        if username not in _sessions:
            first = new_page()
            log_in(first, app, app.members[username])
            _sessions[username] = first.context.storage_state()
            first.context.close()
        return new_page(_sessions[username])

    return logged_in


@pytest.fixture
def page(page_as: Callable[[str], Page]) -> Page:
    """A tab logged in as `stella`, staff and tenant admin of `initech`."""
    return page_as(STAFF)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
