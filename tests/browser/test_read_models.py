"""Read models in the tenant admin, in a real browser: the API's filters narrow the rows,
search finds an id, money reads in its currency, and a rebuild's rate is rounded."""

from __future__ import annotations

import uuid

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import Page, expect

from projections_app.models import RebuildJob
from tests.browser.conftest import BrowserApp, shot

BALANCES = "projections_app/accountbalance/"


@pytest.fixture(scope="module")
def accounts(app: BrowserApp) -> dict[str, str]:
    """Four accounts: Ann in EUR and USD, Bob in EUR and GBP; money moved between them.
    And a system's test, for the system slice's lists."""
    opened = {}
    for label, owner, currency, deposit in (
        ("ann_eur", "Ann Archer", "EUR", 123_456),
        ("ann_usd", "Ann Archer", "USD", 5_000),
        ("bob_eur", "Bob Baker", "EUR", 99),
        ("bob_gbp", "Bob Baker", "GBP", 70_000),
    ):
        account = str(uuid.uuid4())
        app.send("openAccount", {"accountId": account, "owner": owner, "currency": currency})
        app.send("depositMoney", {"accountId": account, "amount": deposit})
        opened[label] = account
    transfer = app.send(
        "transferMoney",
        {
            "transferId": str(uuid.uuid4()),
            "fromAccountId": opened["ann_eur"],
            "toAccountId": opened["bob_eur"],
            "amount": 1_000,
        },
    )
    app.wait_projected("transfers", transfer)
    app.send(
        "executeTest",
        {"testId": str(uuid.uuid4()), "testName": "smoke", "systemId": str(uuid.uuid4())},
    )
    return opened


def listed_ids(page: Page) -> set[str]:
    """The short ids (first 8 characters) of the rows the list shows."""
    return {text.rstrip("…") for text in page.locator("#result_list tbody th").all_inner_texts()}


def test_the_api_filters_narrow_the_read_model_rows(app, page, accounts):
    page.goto(app.admin(BALANCES))
    assert {a[:8] for a in accounts.values()} <= listed_ids(page)  # other tests open accounts too
    shot(page, "10-account-balances")

    owner = page.locator('#changelist-filter input[name="owner"]')
    owner.fill("Ann Archer")
    owner.press("Enter")
    page.wait_for_load_state()
    assert listed_ids(page) == {accounts["ann_eur"][:8], accounts["ann_usd"][:8]}

    currency = page.locator('#changelist-filter input[name="currency"]')
    currency.fill("USD")
    currency.press("Enter")
    page.wait_for_load_state()
    assert listed_ids(page) == {accounts["ann_usd"][:8]}
    expect(page.locator("#result_list")).to_contain_text("50.00 USD")
    shot(page, "11-account-balances-filtered")

    page.locator("#changelist-filter a", has_text="Closed").click()
    page.wait_for_load_state()
    expect(page.locator("#result_list")).to_have_count(0)  # no closed account: no table at all


def test_money_reads_in_its_currency_and_every_field_is_on_the_page(app, page, accounts):
    page.goto(app.admin(BALANCES))
    row = page.locator("#result_list tbody tr", has_text=accounts["ann_eur"][:8])
    expect(row).to_contain_text("1,224.56 EUR")  # 123,456 cents deposited, 1,000 transferred out
    row.locator("th a").click()
    page.wait_for_load_state()

    content = page.locator("#content-main")
    expect(content).to_contain_text(accounts["ann_eur"])
    expect(content).to_contain_text("1,224.56 EUR (122,456 minor units)")
    for label in ("Last event version", "Last position", "Updated at", "Currency"):
        expect(content.locator("label", has_text=label)).to_be_visible()
    shot(page, "12-account-balance-page")


def test_search_finds_an_account_by_its_full_id_and_says_what_it_matches(app, page, accounts):
    page.goto(app.admin("projections_app/statementline/"))
    expect(page.locator("#searchbar_helptext")).to_contain_text("Exact event id")

    page.fill("#searchbar", accounts["bob_gbp"])
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)  # bob's one deposit
    expect(rows.first).to_contain_text("700.00 GBP")
    shot(page, "13-statement-search")


def test_the_lists_fit_the_page_at_1400_px(app, page, accounts):
    for name, path in (
        ("14-transfers", "projections_app/transferstatus/"),
        ("15-statement-lines", "projections_app/statementline/"),
        ("16-bank-totals", "projections_app/banktotals/"),
        ("18-system-status", "projections_app/systemstatus/"),
    ):
        page.goto(app.admin(path))
        expect(page.locator("#result_list")).to_be_visible()
        # The page does not scroll sideways, nor does the table inside its own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400, path
        table = page.locator("#changelist .results")
        assert table.evaluate("box => box.scrollWidth <= box.clientWidth"), (
            path,
            table.evaluate("box => [box.scrollWidth, box.clientWidth]"),
        )
        shot(page, name)


def test_a_rebuild_job_shows_its_rate_rounded_in_the_browser(app, page):
    with schema_context(app.tenant.schema_name):
        RebuildJob.objects.create(
            projection="account_balances",
            version=1,
            status="swapped",
            events_total=9_000,
            events_done=9_000,
            events_per_second=464.66134322078454,
        )
    page.goto(app.admin("projections_app/rebuildjob/"))

    expect(page.locator("#result_list")).to_contain_text("464.7 events/s")
    expect(page.locator("#result_list")).not_to_contain_text("464.66")
    shot(page, "17-rebuild-jobs")
