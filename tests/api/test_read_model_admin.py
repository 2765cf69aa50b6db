"""Read models in the tenant admin: every field on a row's page, sensible list columns, the
API's filter fields as list filters and search, money in its currency; and none of it on a
field the reader's role may not see."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django_tenants.utils import schema_context

from intent_project.admin_sites import tenant_admin_site
from projections_app.admin import _read_model_admin
from projections_app.models import AccountBalance, RebuildJob, SystemStatus
from projections_app.registry import get_read_models
from tests.api import read_scopes as scopes
from tests.api.helpers import client_for, funded_account, project, submit_and_process

BALANCES = "/t/acme/admin/projections_app/accountbalance/"
STATUS = "/t/acme/admin/projections_app/systemstatus/"


def browser(persona: str) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.get(username=persona))
    return client


def rows(html: str) -> list[str]:
    """The changelist's rows, each as its text."""
    if 'id="result_list"' not in html:
        return []
    table = html.split('id="result_list"', 1)[1].split("</table>", 1)[0]
    found = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in found]


def opened(world: Any, owner: str, currency: str, *deposits: int) -> str:
    bea = client_for(world["bea"])
    account = str(uuid.uuid4())
    submit_and_process(
        bea, "openAccount", {"accountId": account, "owner": owner, "currency": currency}, world.acme
    )
    for amount in deposits:
        submit_and_process(
            client_for(world["tom"]), "depositMoney", {"accountId": account, "amount": amount}, world.acme
        )
    project(world.acme)
    return account


@pytest.fixture(autouse=True)
def _members_are_staff(world: Any) -> None:
    get_user_model().objects.filter(username__in=scopes.MEMBERS).update(is_staff=True)


def test_a_balance_is_shown_in_its_currency_in_the_list_and_on_the_page(world):
    account = funded_account(client_for(world["bea"]), world.acme, 1234, 100_000)
    yen = opened(world, "Yoko Yen", "JPY", 5000)

    listed = browser("ada").get(f"{BALANCES}?q={account}+{yen}").content.decode()
    page = browser("ada").get(f"{BALANCES}{account}/change/").content.decode()

    assert "1,012.34 EUR" in listed and "5,000 JPY" in listed
    assert "1,012.34 EUR (101,234 minor units)" in page


def test_money_sorts_by_its_minor_units(world):
    opened(world, "Sorted Pair", "EUR", 900)
    opened(world, "Sorted Pair", "EUR", 10_000)  # as text, "100.00" would sort before "9.00"
    column = _column_index("balance_money")

    ascending = " ".join(
        rows(browser("ada").get(f"{BALANCES}?owner=Sorted+Pair&o={column}").content.decode())
    )
    descending = " ".join(
        rows(browser("ada").get(f"{BALANCES}?owner=Sorted+Pair&o=-{column}").content.decode())
    )

    assert ascending.index("9.00 EUR") < ascending.index("100.00 EUR")
    assert descending.index("100.00 EUR") < descending.index("9.00 EUR")


def _column_index(name: str) -> int:
    admin = tenant_admin_site._registry[AccountBalance]
    request = RequestFactory().get("/")
    request.user = get_user_model().objects.get(username="root")
    return list(admin.get_list_display(request)).index(name)  # ?o= counts from 0


def test_a_list_shows_what_tells_rows_apart_and_a_page_shows_every_field(world):
    account = funded_account(client_for(world["bea"]), world.acme, 500)

    listed = browser("ada").get(f"{BALANCES}?q={account}").content.decode()
    page = browser("ada").get(f"{BALANCES}{account}/change/").content.decode()

    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', listed)
    assert headers == [
        "account_id_short",
        "owner",
        "balance_money",
        "status",
        "opened_at_time",
        "closed_at_time",
    ]
    for model_field in AccountBalance._meta.concrete_fields:
        assert f"<label>{model_field.verbose_name.capitalize()}:</label>" in page, model_field.name


@pytest.mark.parametrize("read_model", sorted(get_read_models()))
def test_every_read_model_lists_its_key_first_and_no_bookkeeping(read_model):
    admin = tenant_admin_site._registry[get_read_models()[read_model].model]
    request = RequestFactory().get("/")
    request.user = get_user_model().objects.get(username="root")

    columns = list(admin.get_list_display(request))

    assert columns[0].startswith(admin.model._meta.pk.name)
    assert not {"last_event_version", "last_position", "last_event_id", "updated_at"} & set(columns)
    assert len(columns) <= 10


def test_the_api_filter_fields_narrow_the_list(world):
    eur = opened(world, "Filter Eve", "EUR", 100)
    usd = opened(world, "Filter Eve", "USD", 100)
    other = opened(world, "Filter Otto", "USD", 100)
    ada = browser("ada")

    by_owner = ada.get(f"{BALANCES}?owner=Filter+Eve").content.decode()
    by_both = ada.get(f"{BALANCES}?owner=Filter+Eve&currency=USD").content.decode()

    assert eur[:8] in by_owner and usd[:8] in by_owner and other[:8] not in by_owner
    assert usd[:8] in by_both and eur[:8] not in by_both
    # The filters of the sidebar: choices as links, other fields as a box for a value.
    assert 'name="owner" value="Filter Eve"' in by_both and 'name="currency" value="USD"' in by_both
    assert "?currency=USD&amp;owner=Filter+Eve&amp;status__exact=closed" in by_both  # keeps the others


def test_a_filter_value_that_is_no_valid_id_is_refused_not_a_server_error(world):
    response = browser("ada").get("/t/acme/admin/projections_app/statementline/?account_id=nope")

    assert response.status_code == 302 and "e=1" in response["Location"]


def test_search_matches_an_exact_id_or_name_and_says_so(world):
    account = opened(world, "Searched Sue", "EUR", 100)
    other = opened(world, "Searched Sam", "EUR", 100)
    ada = browser("ada")

    by_id = ada.get(f"{BALANCES}?q={account}").content.decode()
    by_owner = ada.get(f"{BALANCES}?q=searched+sue").content.decode()
    by_prefix = ada.get(f"{BALANCES}?q={account[:8]}").content.decode()

    assert account[:8] in by_id and other[:8] not in by_id
    assert account[:8] in by_owner and other[:8] not in by_owner
    assert rows(by_prefix) == []  # exact: a prefix is no id
    assert (
        "Exact account id (several, separated by spaces), or exact owner or currency (ignoring case)."
        in by_id
    )


def test_a_redacted_field_is_never_a_filter_or_a_search_field():
    """Had system_status a filter and a search on the field a viewer may not see, the viewer
    would get neither; a developer gets both."""
    declared = get_read_models()["system_status"]
    admin_class = _read_model_admin(
        type(declared)(
            name=declared.name,
            model=SystemStatus,
            projection=declared.projection,
            filter_fields=("last_result", "last_message"),
            ordering=declared.ordering,
        )
    )
    admin_class.search_columns = ("system_id", "last_message")
    admin = admin_class(SystemStatus, tenant_admin_site)

    def asked_by(persona: str) -> tuple[list[str], list[str]]:
        request = RequestFactory().get("/")
        request.user = get_user_model().objects.get(username=persona)
        request.tenant = _acme()
        filters = [f if isinstance(f, str) else f[0] for f in admin.get_list_filter(request)]
        return filters, list(admin.get_search_fields(request))

    assert asked_by("dave") == (["last_result", "last_message"], ["system_id", "last_message"])
    assert asked_by("vera") == (["last_result"], ["system_id"])


def _acme() -> Any:
    from intent_project.tenants.models import Tenant

    return Tenant.objects.get(slug="acme")


def test_a_viewer_gets_no_filter_or_search_on_what_it_may_not_see(world):
    listed = browser("vera").get(STATUS).content.decode()
    as_developer = browser("dave").get(STATUS).content.decode()

    for html in (listed, as_developer):
        assert 'name="last_result"' in html and "Exact system id" in html
    assert "last_message" not in listed and "Last message" not in listed


@pytest.mark.parametrize("persona", ["alice", "dave"])
def test_staff_whose_role_reads_no_banking_cannot_open_or_filter_balances(world, persona):
    response = browser(persona).get(f"{BALANCES}?owner=Ann")

    assert response.status_code == 403


def test_a_rebuild_job_shows_its_rate_rounded(world):
    with schema_context(world.acme.schema_name):
        RebuildJob.objects.create(
            projection="system_status", version=1, status="done", events_per_second=464.66134322078454
        )

    listed = browser("ada").get("/t/acme/admin/projections_app/rebuildjob/").content.decode()

    assert "464.7 events/s" in listed and "464.66" not in listed
