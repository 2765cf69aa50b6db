"""A staff member's daily work in the tenant admin, in a real browser at 1400x1000: send a
command through its form and watch it finish, read its flow, retry a failed command, resume
a stalled projection, watch events arrive, look at the dashboard."""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db import connections
from django_tenants.utils import schema_context
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.browser.conftest import VIEWPORT, BrowserApp, shot


def _account(app: BrowserApp, owner: str, deposit: int = 0) -> str:
    account = str(uuid.uuid4())
    app.send("openAccount", {"accountId": account, "owner": owner, "currency": "EUR"})
    if deposit:
        app.send("depositMoney", {"accountId": account, "amount": deposit})
    return account


def _in_own_thread(work: Callable[[], object]) -> None:
    """ORM work from a test: Playwright's sync API keeps an event loop in the test's thread,
    where Django refuses it; a thread of its own, with its connection closed after."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def _reload_until(page: Page, text: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        page.wait_for_load_state()
        with contextlib.suppress(PlaywrightError):  # the page reloading itself meanwhile
            if text in page.content():
                return
        assert time.monotonic() < deadline, f"{text!r} never appeared on {page.url}"
        page.wait_for_timeout(500)
        with contextlib.suppress(PlaywrightError):
            page.reload()


def test_a_transfer_sent_through_the_form_reaches_processed_and_its_flow_fits(app, page):
    source, target = _account(app, "Ada", deposit=5000), _account(app, "Bob")
    page.goto(app.admin("send/"))
    page.click("text=transferMoney")
    page.click("[data-uuid-for=id_transferId]")
    assert uuid.UUID(page.input_value("#id_transferId"))
    page.fill("#id_fromAccountId", source)
    page.fill("#id_toAccountId", target)
    page.fill("#id_amount", "1250")
    shot(page, "10-send-transfer-form")
    page.click("input[name=_send]")

    assert "/commands_app/command/" in page.url
    expect(page.locator(".messagelist")).to_contain_text("Stored transferMoney")
    # Followed live (the command's stream), then the page reloads with its events.
    expect(page.locator('[data-command-status="processed"]').first).to_be_visible(timeout=30_000)
    _reload_until(page, "markTransferCompleted")  # the saga's last step, in the flow
    nodes = page.locator(".intent-trace .node")
    assert nodes.count() == 8  # transfer, requested, debit, debited, credit, credited, mark, completed
    for index in range(nodes.count()):
        box = nodes.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], index
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    expect(page.locator(".intent-trace .current")).to_contain_text("transferMoney")
    shot(page, "11-transfer-command-page", full_page=True)


def test_a_command_page_follows_a_pending_command_live_until_it_is_processed(app, page):
    """Due in a few seconds (not_before): the page opens on `pending` and changes by itself."""
    due = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    status, body, _ = app.web.request(
        "POST",
        f"/t/{app.tenant.slug}/api/commands/",
        app.members["stella"].token,
        {"type": "logMessage", "payload": {"message": "later"}, "not_before": due},
    )
    assert status == 202, body
    page.goto(app.admin(f"commands_app/command/{body['id']}/change/"))
    expect(page.locator('[data-command-status="pending"]').first).to_be_visible()
    expect(page.locator("[data-command-stream]")).to_be_visible()  # the stream is open

    # A status frame arrived (the text was "Following this command live…"), then the page
    # reloads itself once the command is final.
    expect(page.locator("[data-command-stream]")).to_contain_text("Status:", timeout=30_000)
    expect(page.locator('[data-command-status="processed"]').first).to_be_visible(timeout=30_000)


def test_a_failed_command_is_retried_from_its_page(app, page):
    failed = app.send("simulateFailure", {}, expect="failed")
    page.goto(app.admin(f"commands_app/command/{failed['id']}/change/"))
    expect(page.locator('[data-command-status="failed"]').first).to_be_visible()
    shot(page, "12-failed-command")

    page.click("button[data-action=retry]")

    expect(page.locator(".messagelist")).to_contain_text("Retried (sent again): 1 done.")


def test_a_stalled_projection_is_resumed_from_its_page(app, page):
    from projections_app.models import ProjectionState

    def stall() -> None:
        with schema_context(app.tenant.schema_name):
            ProjectionState.objects.filter(name="bank_totals").update(
                status="stalled",
                failures=5,
                last_error={"code": "projection_handler_failed", "message": "boom"},
            )

    _in_own_thread(stall)
    page.goto(app.admin("projections_app/projectionstate/bank_totals/change/"))
    expect(page.locator("button[data-action=resume]")).to_be_visible()
    expect(page.locator("a[data-action=skip]")).to_be_visible()
    shot(page, "13-stalled-projection")

    page.click("button[data-action=resume]")

    expect(page.locator(".messagelist")).to_contain_text("Resumed: 1 done.")
    expect(page.locator(".field-status .readonly")).to_have_text("Running")
    expect(page.locator("button[data-action=resume]")).to_have_count(0)


def test_a_rebuild_asks_for_confirmation_first(app, page):
    page.goto(app.admin("projections_app/projectionstate/account_balances/change/"))
    page.click("a[data-action=rebuild]")

    expect(page.locator("#content-main")).to_contain_text("rebuilds the projection from the whole log")
    shot(page, "14-confirm-rebuild")
    page.click("text=No, take me back")
    assert page.url.endswith("/projectionstate/account_5Fbalances/change/")  # the admin's quoting


def test_the_live_events_page_shows_a_new_event_without_a_reload(app, page):
    page.goto(app.admin("live/"))
    expect(page.locator("#intent-live-state")).to_have_text("live", timeout=15_000)
    before = page.evaluate("performance.getEntriesByType('navigation').length")

    account = _account(app, "Live")

    fresh = page.locator("#intent-live tbody tr.fresh", has_text="accountOpened")
    expect(fresh.first).to_be_visible(timeout=15_000)
    expect(fresh.first).to_contain_text(account[:8])
    assert page.evaluate("performance.getEntriesByType('navigation').length") == before  # same page
    shot(page, "15-live-events")


def test_the_dashboard_charts_commands_and_lists_projections(app, page):
    # Both kinds sent here: the test must not depend on what earlier tests left behind.
    app.send("logMessage", {"message": "charted"})
    app.send("simulateFailure", {}, expect="failed")
    page.goto(app.admin("dashboard/"))

    expect(page.locator("svg.intent-chart rect.bar-processed").first).to_be_attached()
    expect(page.locator("svg.intent-chart rect.bar-failed").first).to_be_attached()
    expect(page.locator(".module", has_text="Projections")).to_contain_text("account_balances")
    expect(page.locator(".module", has_text="Latest failures")).to_contain_text("simulateFailure")
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    shot(page, "16-dashboard", full_page=True)


def test_the_commands_list_fits_1400px_with_short_ids_and_seconds(app, page):
    app.send("logMessage", {"message": "list"})
    page.goto(app.admin("commands_app/command/"))

    first = page.locator("#result_list tbody tr").first
    short = first.locator(".intent-id").first
    expect(short).to_have_text((short.get_attribute("title") or "")[:8])
    expect(first.locator("td.field-created")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    box = page.locator("#result_list th.column-processed").bounding_box()
    assert box is not None and box["x"] + box["width"] <= VIEWPORT["width"]
    shot(page, "17-commands-list")
