"""The banking read models on PostgreSQL: a frozen stream projects to known rows, whether
applied step by step, all at once, twice, or rebuilt beside the live version."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.forms.models import model_to_dict
from django_tenants.utils import schema_context

from commands_app.domain.aggregate import Aggregate
from commands_app.domain.messages import DomainEvent
from commands_app.registry import get_registry
from commands_app.slices.banking.aggregate import Account, Transfer
from commands_app.slices.banking.payloads import (
    AccountClosed,
    AccountCreditDeclined,
    AccountCreditedForTransfer,
    AccountDebitDeclined,
    AccountDebitedForTransfer,
    AccountOpened,
    AccountRefundedForTransfer,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferCompleted,
    TransferDeclined,
    TransferRefunded,
    TransferRequested,
)
from events_app.models import Event
from events_app.store import PostgresEventStore, to_recorded
from projections_app.models import AccountBalance, BankTotals, RebuildStatus, StatementLine, TransferStatus
from projections_app.operations import verify
from projections_app.rebuild import rebuild
from projections_app.registry import get_projection
from projections_app.runner import run_projection

ANN = uuid.UUID("a0000000-0000-4000-8000-00000000000a")  # EUR
BEN = uuid.UUID("b0000000-0000-4000-8000-00000000000b")  # EUR
CY = uuid.UUID("c0000000-0000-4000-8000-00000000000c")  # USD, closed at the end
T_DONE, T_REFUNDED, T_DECLINED, T_IN_FLIGHT = (
    uuid.UUID(f"70000000-0000-4000-8000-00000000000{n}") for n in range(1, 5)
)
NAMES = ("account_balances", "account_statement", "transfers", "bank_totals")


def _account(
    account_id: uuid.UUID, *events: DomainEvent
) -> tuple[type[Aggregate], uuid.UUID, list[DomainEvent]]:
    return (Account, account_id, list(events))


def _transfer(
    transfer_id: uuid.UUID, *events: DomainEvent
) -> tuple[type[Aggregate], uuid.UUID, list[DomainEvent]]:
    return (Transfer, transfer_id, list(events))


# A frozen stream: (aggregate, id, events appended in one transaction), in log order, as the
# transfer saga would have produced it.
GOLDEN_STREAM = [
    _account(ANN, AccountOpened(owner="Ann", currency="EUR")),
    _account(ANN, MoneyDeposited(amount=1_000, currency="EUR", balance_after=1_000)),
    _account(ANN, MoneyWithdrawn(amount=100, currency="EUR", balance_after=900)),
    _account(BEN, AccountOpened(owner="Ben", currency="EUR")),
    _account(
        CY,
        AccountOpened(owner="Cy", currency="USD"),
        MoneyDeposited(amount=50, currency="USD", balance_after=50),
    ),
    # completed
    _transfer(T_DONE, TransferRequested(from_account_id=ANN, to_account_id=BEN, amount=200)),
    _account(
        ANN, AccountDebitedForTransfer(transfer_id=T_DONE, amount=200, currency="EUR", balance_after=700)
    ),
    _account(
        BEN, AccountCreditedForTransfer(transfer_id=T_DONE, amount=200, currency="EUR", balance_after=200)
    ),
    _transfer(T_DONE, TransferCompleted()),
    # refunded: Cy keeps USD
    _transfer(T_REFUNDED, TransferRequested(from_account_id=ANN, to_account_id=CY, amount=100)),
    _account(
        ANN, AccountDebitedForTransfer(transfer_id=T_REFUNDED, amount=100, currency="EUR", balance_after=600)
    ),
    _account(
        CY,
        AccountCreditDeclined(transfer_id=T_REFUNDED, amount=100, currency="EUR", reason="currency_mismatch"),
    ),
    _account(
        ANN, AccountRefundedForTransfer(transfer_id=T_REFUNDED, amount=100, currency="EUR", balance_after=700)
    ),
    _transfer(T_REFUNDED, TransferRefunded(reason="currency_mismatch")),
    # declined: Ann cannot pay
    _transfer(T_DECLINED, TransferRequested(from_account_id=ANN, to_account_id=BEN, amount=5_000)),
    _account(
        ANN,
        AccountDebitDeclined(
            transfer_id=T_DECLINED, amount=5_000, currency="EUR", reason="insufficient_funds"
        ),
    ),
    _transfer(T_DECLINED, TransferDeclined(reason="insufficient_funds")),
    # in flight: Ben debited, Ann not credited yet
    _transfer(
        T_IN_FLIGHT, TransferRequested(from_account_id=BEN, to_account_id=ANN, amount=50, currency="EUR")
    ),
    _account(
        BEN, AccountDebitedForTransfer(transfer_id=T_IN_FLIGHT, amount=50, currency="EUR", balance_after=150)
    ),
    # Cy empties and closes the account
    _account(CY, MoneyWithdrawn(amount=50, currency="USD", balance_after=0), AccountClosed(currency="USD")),
]

GOLDEN_BALANCES = {
    ANN: {"owner": "Ann", "currency": "EUR", "balance": 700, "status": "open", "last_event_version": 6},
    BEN: {"owner": "Ben", "currency": "EUR", "balance": 150, "status": "open", "last_event_version": 3},
    CY: {"owner": "Cy", "currency": "USD", "balance": 0, "status": "closed", "last_event_version": 5},
}
# (account, kind, signed amount, balance after, transfer), in log order
GOLDEN_STATEMENT = [
    (ANN, "deposit", 1_000, 1_000, None),
    (ANN, "withdrawal", -100, 900, None),
    (CY, "deposit", 50, 50, None),
    (ANN, "transfer_out", -200, 700, T_DONE),
    (BEN, "transfer_in", 200, 200, T_DONE),
    (ANN, "transfer_out", -100, 600, T_REFUNDED),
    (ANN, "refund", 100, 700, T_REFUNDED),
    (BEN, "transfer_out", -50, 150, T_IN_FLIGHT),
    (CY, "withdrawal", -50, 0, None),
]
GOLDEN_TRANSFERS = {
    T_DONE: {"status": "completed", "reason": "", "currency": "EUR", "amount": 200, "settled": True},
    T_REFUNDED: {
        "status": "refunded",
        "reason": "currency_mismatch",
        "currency": "EUR",
        "amount": 100,
        "settled": True,
    },
    T_DECLINED: {
        "status": "declined",
        "reason": "insufficient_funds",
        "currency": "EUR",  # the request named none: the source account's
        "amount": 5_000,
        "settled": True,
    },
    T_IN_FLIGHT: {"status": "debited", "reason": "", "currency": "EUR", "amount": 50, "settled": False},
}
# EUR: 1000 deposited - 100 withdrawn = 850 on accounts + 50 in flight.
GOLDEN_TOTALS = {
    "EUR": {"total_balance": 850, "accounts_open": 2, "in_flight": 50},
    "USD": {"total_balance": 0, "accounts_open": 0, "in_flight": 0},
}


def _append(tenant: Any, stream: list[tuple[type[Aggregate], uuid.UUID, list[DomainEvent]]]) -> None:
    with schema_context(tenant.schema_name):
        store = PostgresEventStore(get_registry(), snapshot_every=0)
        for aggregate_cls, aggregate_id, events in stream:
            with transaction.atomic():
                store.append(store.load(aggregate_cls, aggregate_id), events, {})


def _project(tenant: Any) -> None:
    with schema_context(tenant.schema_name):
        for name in NAMES:
            projection = get_projection(name)
            assert projection is not None, name
            while run_projection(projection).outcome == "progress":
                pass


def _rows(tenant: Any) -> dict[str, dict[Any, dict[str, Any]]]:
    with schema_context(tenant.schema_name):
        return {
            model._meta.db_table: {row.pk: model_to_dict(row) for row in model.objects.all()}
            for model in (AccountBalance, StatementLine, TransferStatus, BankTotals)
        }


def _assert_golden(tenant: Any) -> None:
    with schema_context(tenant.schema_name):
        balances = {row.account_id: model_to_dict(row) for row in AccountBalance.objects.all()}
        assert set(balances) == set(GOLDEN_BALANCES)
        for account_id, expected in GOLDEN_BALANCES.items():
            assert {k: balances[account_id][k] for k in expected} == expected, account_id
        assert balances[CY]["closed_at"] is not None and balances[ANN]["closed_at"] is None

        lines = [
            (line.account_id, line.kind, line.amount, line.balance_after, line.transfer_id)
            for line in StatementLine.objects.order_by("position")
        ]
        assert lines == GOLDEN_STATEMENT
        assert set(StatementLine.objects.values_list("currency", flat=True)) == {"EUR", "USD"}
        # Each line is keyed by the event that moved the money.
        event_ids = set(Event.objects.values_list("id", flat=True))
        assert set(StatementLine.objects.values_list("event_id", flat=True)) <= event_ids

        transfers = {row.transfer_id: row for row in TransferStatus.objects.all()}
        assert set(transfers) == set(GOLDEN_TRANSFERS)
        for transfer_id, expected in GOLDEN_TRANSFERS.items():
            row = transfers[transfer_id]
            assert {
                "status": row.status,
                "reason": row.reason,
                "currency": row.currency,
                "amount": row.amount,
                "settled": row.settled_at is not None,
            } == expected, transfer_id
        assert (transfers[T_DONE].from_account_id, transfers[T_DONE].to_account_id) == (ANN, BEN)

        totals = {row.currency: model_to_dict(row) for row in BankTotals.objects.all()}
        assert set(totals) == set(GOLDEN_TOTALS)
        for currency, expected in GOLDEN_TOTALS.items():
            assert {k: totals[currency][k] for k in expected} == expected, currency


def test_the_golden_stream_projects_to_the_golden_rows_step_by_step(fresh_tenant):
    for step in GOLDEN_STREAM:
        _append(fresh_tenant, [step])
        _project(fresh_tenant)

    _assert_golden(fresh_tenant)


def test_the_golden_stream_projects_to_the_golden_rows_in_one_batch(fresh_tenant):
    _append(fresh_tenant, GOLDEN_STREAM)

    _project(fresh_tenant)

    _assert_golden(fresh_tenant)


def test_applying_the_same_events_again_changes_nothing(fresh_tenant):
    _append(fresh_tenant, GOLDEN_STREAM)
    _project(fresh_tenant)
    before = _rows(fresh_tenant)

    with schema_context(fresh_tenant.schema_name):
        records = [to_recorded(row, get_registry()) for row in Event.objects.order_by("position")]
        for name in NAMES:
            projection = get_projection(name)
            assert projection is not None
            handled = [rec for rec in records if rec.type in projection.event_types]
            with transaction.atomic():
                projection.apply_batch(handled)  # the whole log again, in one batch
            with transaction.atomic():
                for rec in reversed(handled):  # and one event at a time, latest first
                    projection.apply(rec)

    assert _rows(fresh_tenant) == before
    _assert_golden(fresh_tenant)


def test_a_rebuild_gives_identical_rows(fresh_tenant):
    _append(fresh_tenant, GOLDEN_STREAM)
    _project(fresh_tenant)
    live = _rows(fresh_tenant)

    with schema_context(fresh_tenant.schema_name):
        for name in NAMES:
            assert rebuild(name).status == RebuildStatus.SWAPPED
        assert all(v.ok for v in verify(list(NAMES)))

    assert _rows(fresh_tenant) == live
    _assert_golden(fresh_tenant)
