"""import_events: events from another system appended after a tenant's head, or refused whole.

Optimistic concurrency per stream: a file that starts a stream anywhere but right after
its head (or runs it out of order) appends nothing, and running a file twice is refused
the same way. Every line is checked against the registry. Sagas pass over imported history
unless asked to react."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from commands_app.models import Command
from events_app.bulk import EventsRefused, import_events
from events_app.models import Event
from projections_app.models import AccountBalance, SagaInstance
from tests.integration.helpers import submit
from tests.integration.test_tenant_portability import _settle


def _write(path: Path, lines: list[Any], *, compress: bool = False) -> Path:
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _opened(account: uuid.UUID, owner: str, version: int = 1) -> dict[str, Any]:
    return {
        "stream_type": "account",
        "stream_id": str(account),
        "version": version,
        "type": "accountOpened",
        "payload": {"owner": owner, "currency": "EUR"},
    }


def _deposited(account: uuid.UUID, version: int, amount: int, balance: int) -> dict[str, Any]:
    return {
        "stream_type": "account",
        "stream_id": str(account),
        "version": version,
        "type": "moneyDeposited",
        "payload": {"amount": amount, "currency": "EUR", "balanceAfter": balance},
        "occurred_at": "2019-03-01T09:30:00+01:00",
        "metadata": {"source": "legacy-ledger", "legacyId": f"L-{version}"},
    }


def _log(tenant: Any) -> list[tuple[str, str, int]]:
    with schema_context(tenant.schema_name):
        return list(Event.objects.order_by("position").values_list("type", "stream_id", "version"))


@pytest.fixture
def opened(fresh_tenant: Any) -> tuple[Any, uuid.UUID]:
    """A tenant with one account opened by a command (its stream at version 1)."""
    account = uuid.uuid4()
    submit(
        fresh_tenant,
        "openAccount",
        {"accountId": str(account), "owner": "Ann", "currency": "EUR"},
        role="admin",
    )
    _settle(fresh_tenant)
    return fresh_tenant, account


def test_events_are_appended_after_each_streams_head_and_the_projections_and_aggregates_follow(
    opened, tmp_path
):
    tenant, ann = opened
    ben = uuid.uuid4()
    path = _write(
        tmp_path / "legacy.jsonl.gz",
        [
            _deposited(ann, 2, 700, 700),
            _opened(ben, "Ben"),
            _deposited(ann, 3, 300, 1000),
            _deposited(ben, 2, 50, 50),
        ],
        compress=True,
    )

    call_command("import_events", str(path), tenant=tenant.slug)

    log = _log(tenant)
    assert [(t, v) for t, _, v in log] == [
        ("accountOpened", 1),
        ("moneyDeposited", 2),
        ("accountOpened", 1),
        ("moneyDeposited", 3),
        ("moneyDeposited", 2),
    ]
    with schema_context(tenant.schema_name):
        imported = Event.objects.filter(type="moneyDeposited", stream_id=ann).order_by("version").first()
        assert imported.metadata["source"] == "legacy-ledger"
        assert imported.metadata["occurred_at"] == "2019-03-01T09:30:00+01:00"
        assert imported.metadata["import"]["sagas"] is False
    _settle(tenant)  # the projections apply imported events like any others
    with schema_context(tenant.schema_name):
        balances = dict(AccountBalance.objects.values_list("account_id", "balance"))
    assert balances == {ann: 1000, ben: 50}
    # The aggregate is loaded from the whole stream: a command after the import goes on from it.
    submit(tenant, "withdrawMoney", {"accountId": str(ann), "amount": 1000}, role="admin")
    _settle(tenant)
    with schema_context(tenant.schema_name):
        assert Command.objects.filter(type="withdrawMoney", status="processed").exists()
        assert AccountBalance.objects.get(account_id=ann).balance == 0
    assert _log(tenant)[-1] == ("moneyWithdrawn", ann, 4)


@pytest.mark.parametrize(
    ("first_version", "reason"),
    [(1, "taken in the tenant already"), (3, "is at version 1, the file starts it at 3")],
)
def test_a_stream_that_does_not_start_right_after_its_head_refuses_the_whole_file(
    opened, tmp_path, first_version, reason
):
    tenant, ann = opened
    before = _log(tenant)
    # A new stream first (it would be fine alone), then the conflicting one.
    path = _write(
        tmp_path / "moved.jsonl", [_opened(uuid.uuid4(), "Cy"), _deposited(ann, first_version, 1, 1)]
    )

    with schema_context(tenant.schema_name), pytest.raises(EventsRefused, match=reason):
        import_events(path, tenant.schema_name)

    assert _log(tenant) == before


def test_the_same_file_imported_twice_is_refused_the_second_time(opened, tmp_path):
    tenant, ann = opened
    path = _write(tmp_path / "once.jsonl", [_deposited(ann, 2, 10, 10)])
    call_command("import_events", str(path), tenant=tenant.slug)
    once = _log(tenant)

    with pytest.raises(CommandError, match="Nothing was appended"):
        call_command("import_events", str(path), tenant=tenant.slug)

    assert _log(tenant) == once


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "accountTeleported"}, "not in the registry"),
        ({"stream_type": "spaceship"}, "not a registered aggregate"),
        ({"type": "messageLogged"}, "not an event of account streams"),  # the system slice's
        ({"schema_version": 7}, "schema version 7"),
        ({"payload": {"owner": "Dee"}}, "payload is not valid"),
        ({"payload": {"owner": "Dee", "currency": "EUR", "admin": True}}, "payload is not valid"),
        ({"stream_id": "not-a-uuid"}, "is not a uuid"),
        ({"version": 0}, "not a positive integer"),
        ({"metadata": {"command_id": str(uuid.uuid4())}}, "platform's own"),
        ({"occurred_at": "yesterday"}, "not an ISO time"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_a_line_the_registry_or_the_format_does_not_accept_refuses_the_whole_file(
    opened, tmp_path, change, reason
):
    tenant, _ = opened
    before = _log(tenant)
    good = _opened(uuid.uuid4(), "Dee")
    path = _write(tmp_path / "bad.jsonl", [_opened(uuid.uuid4(), "Eve"), {**good, **change}])

    with schema_context(tenant.schema_name), pytest.raises(EventsRefused, match=f"line 2: .*{reason}"):
        import_events(path, tenant.schema_name)

    assert _log(tenant) == before


def test_versions_out_of_order_in_the_file_and_files_that_are_not_events_are_refused(opened, tmp_path):
    tenant, _ = opened
    cy = uuid.uuid4()
    cases = {
        "gap.jsonl": ([_opened(cy, "Cy"), _deposited(cy, 3, 1, 1)], "does not follow its version 1"),
        "empty.jsonl": ([], "no events"),
        "list.jsonl": ([[1, 2]], "a JSON object"),
        "twice.jsonl": (
            [{**_opened(cy, "Cy"), "id": str(cy)}, {**_opened(uuid.uuid4(), "Di"), "id": str(cy)}],
            "event id appears twice",
        ),
    }
    before = _log(tenant)
    for name, (lines, reason) in cases.items():
        with schema_context(tenant.schema_name), pytest.raises(EventsRefused, match=reason):
            import_events(_write(tmp_path / name, lines), tenant.schema_name)
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text('{"stream_type": \n')
    with pytest.raises(CommandError, match="line 1 is not JSON"):
        call_command("import_events", str(garbled), tenant=tenant.slug)
    with pytest.raises(CommandError, match="No tenant"):
        call_command("import_events", str(garbled), tenant="nobody-here")
    assert _log(tenant) == before


def _requested(transfer: uuid.UUID, source: uuid.UUID, target: uuid.UUID) -> dict[str, Any]:
    return {
        "stream_type": "transfer",
        "stream_id": str(transfer),
        "version": 1,
        "type": "transferRequested",
        "payload": {"fromAccountId": str(source), "toAccountId": str(target), "amount": 5, "currency": "EUR"},
    }


@pytest.mark.parametrize("react", [False, True])
def test_sagas_pass_over_imported_history_unless_the_import_asks_them_to_react(opened, tmp_path, react):
    tenant, ann = opened
    transfer = uuid.uuid4()
    path = _write(tmp_path / "transfers.jsonl", [_requested(transfer, ann, uuid.uuid4())])

    call_command("import_events", str(path), tenant=tenant.slug, react=react)
    _settle(tenant)

    with schema_context(tenant.schema_name):
        issued = Command.objects.filter(metadata__source="saga").count()
        instances = SagaInstance.objects.count()
    assert (issued > 0, instances > 0) == (react, react)
