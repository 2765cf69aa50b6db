"""Personal data: sealed per subject wherever it is stored, erased by forgetting the subject.

Banking's account owner is personal data of the account. It is stored sealed (AES-GCM, a
key per account) in the command store, the event log and the snapshots; every read path
opens it. `forget_subject` deletes the key: from then on it reads as the placeholder
everywhere, the read models are rebuilt to it, and the events stay as they were.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from commands_app.domain.personal import PLACEHOLDER, SubjectErased
from commands_app.models import Command
from commands_app.operations import Operator, OperatorRequired
from commands_app.read_policy import Reader
from commands_app.registry import get_registry
from events_app.models import Event, Snapshot, SubjectKey
from events_app.store import PostgresEventStore
from intent_project.tenants.services import set_membership
from projections_app.models import AccountBalance
from projections_app.operations import forget_subjects
from projections_app.rebuild import rebuild
from projections_app.registry import projections_for_event_types
from tests.integration.helpers import submit
from tests.integration.test_tenant_portability import _settle

NAME = "Ann Quimby-Marlowe"  # rare enough that a match anywhere is this test's


def _open(tenant: Any, owner: str = NAME, account: uuid.UUID | None = None) -> uuid.UUID:
    account = account or uuid.uuid4()
    submit(
        tenant, "openAccount", {"accountId": str(account), "owner": owner, "currency": "EUR"}, role="admin"
    )
    return account


def _places_holding(schema: str, text: str) -> list[str]:
    """Every table.column of the schema whose text, varchar, json or jsonb values contain `text`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE table_schema = %s AND t.table_type = 'BASE TABLE'"
            " AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'character')",
            [schema],
        )
        columns = cursor.fetchall()
        found = []
        for table, column in columns:
            cursor.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text LIKE %s',
                [f"%{text}%"],
            )
            if cursor.fetchone()[0]:
                found.append(f"{table}.{column}")
        return found


@pytest.fixture
def banked(fresh_tenant: Any, settings: Any) -> tuple[Any, uuid.UUID]:
    """A tenant with Ann's account opened and used enough to have a snapshot."""
    settings.SNAPSHOT_EVERY_BY_TYPE = {"account": 2}
    account = _open(fresh_tenant)
    _settle(fresh_tenant)
    for amount in (500, 700):
        submit(fresh_tenant, "depositMoney", {"accountId": str(account), "amount": amount}, role="admin")
    _settle(fresh_tenant)
    return fresh_tenant, account


def test_the_owner_is_stored_sealed_and_every_read_path_opens_it(banked):
    tenant, account = banked
    with schema_context(tenant.schema_name):
        command = Command.objects.get(type="openAccount")
        event = Event.objects.get(type="accountOpened")
        snapshot = Snapshot.objects.get(stream_id=account)
        for stored in (command.payload["owner"], event.payload["owner"], snapshot.state["owner"]):
            assert set(stored) == {"$personal", "subject", "sealed"}
            assert stored["subject"] == str(account)
        # Only the read model, the readable view, holds it in clear: not the stores.
        assert _places_holding(tenant.schema_name, NAME) == ["projections_app_accountbalance.owner"]
        assert SubjectKey.objects.get(subject=str(account)).key is not None

        store = PostgresEventStore(get_registry())
        assert store.load(get_registry().aggregates["account"], account).owner == NAME  # from the snapshot
        assert store.read_stream("account", account)[0].event.owner == NAME
        assert AccountBalance.objects.get(account_id=account).owner == NAME


def test_the_api_shows_the_owner_in_clear_in_commands_and_events(banked, world):
    tenant, account = banked
    set_membership(world["ada"].user, tenant, "admin")
    client = world["ada"].client()
    events = client.get(f"/t/{tenant.slug}/api/events/", {"type": "accountOpened"}).json()["results"]
    assert [e["payload"]["owner"] for e in events] == [NAME]
    event = client.get(f"/t/{tenant.slug}/api/events/{events[0]['id']}/").json()
    assert event["payload"]["owner"] == NAME
    commands = client.get(f"/t/{tenant.slug}/api/commands/", {"type": "openAccount"}).json()
    assert [c["payload"]["owner"] for c in commands["results"]] == [NAME]


def test_forgetting_a_subject_erases_it_everywhere_and_the_log_stays_replayable(banked, world):
    tenant, account = banked
    other = _open(tenant, owner="Ben Okonkwo-Laine")
    _settle(tenant)
    with schema_context(tenant.schema_name):
        log_before = list(Event.objects.order_by("position").values_list("id", "payload"))

    out = io.StringIO()
    call_command("forget_subject", str(account), "--tenant", tenant.slug, stdout=out)
    assert f"Erased {account}" in out.getvalue()

    with schema_context(tenant.schema_name):
        key = SubjectKey.objects.get(subject=str(account))
        assert key.key is None and key.erased_at is not None and key.erased_by == "manage.py"
        # Nowhere in the schema, the read models included (they were rebuilt).
        assert _places_holding(tenant.schema_name, NAME) == []
        assert AccountBalance.objects.get(account_id=account).owner == PLACEHOLDER
        assert AccountBalance.objects.get(account_id=other).owner == "Ben Okonkwo-Laine"  # only Ann
        # The events are exactly as they were: immutable, and still replayable.
        assert list(Event.objects.order_by("position").values_list("id", "payload")) == log_before
        store = PostgresEventStore(get_registry())
        assert store.load(get_registry().aggregates["account"], account).owner == PLACEHOLDER
        assert store.read_stream("account", account)[0].event.owner == PLACEHOLDER
        for name in projections_for_event_types(get_registry().personal_events):
            assert rebuild(name).status == "swapped"
        assert AccountBalance.objects.get(account_id=account).owner == PLACEHOLDER

    set_membership(world["ada"].user, tenant, "admin")
    events = world["ada"].client().get(f"/t/{tenant.slug}/api/events/", {"aggregate_id": str(account)}).json()
    assert events["results"][0]["payload"]["owner"] == PLACEHOLDER

    # The account goes on working: money moves, balances add up.
    submit(tenant, "depositMoney", {"accountId": str(account), "amount": 300}, role="admin")
    _settle(tenant)
    with schema_context(tenant.schema_name):
        assert AccountBalance.objects.get(account_id=account).balance == 1500
        assert Command.objects.filter(status="failed").count() == 0


def test_new_personal_data_for_an_erased_subject_is_refused_with_nothing_stored(banked):
    tenant, account = banked
    call_command("forget_subject", str(account), "--tenant", tenant.slug, stdout=io.StringIO())
    with schema_context(tenant.schema_name):
        commands = Command.objects.count()
    with pytest.raises(SubjectErased):
        _open(tenant, owner="Ann Again", account=account)
    with schema_context(tenant.schema_name):
        assert Command.objects.count() == commands
    assert _places_holding(tenant.schema_name, "Ann Again") == []


def test_an_idempotent_resend_of_a_sealed_command_is_a_replay_not_a_conflict(fresh_tenant):
    account = uuid.uuid4()
    command_id = uuid.uuid4()
    body = {"accountId": str(account), "owner": NAME, "currency": "EUR"}
    first = submit(fresh_tenant, "openAccount", body, role="admin", command_id=command_id)
    again = submit(fresh_tenant, "openAccount", body, role="admin", command_id=command_id)
    assert again.pk == first.pk
    # The body hash holds a keyed fingerprint of the owner, never a plain digest of it.
    assert first.body_hash == again.body_hash


@pytest.mark.parametrize("role", ["developer", "banker", "viewer", None])
def test_only_tenant_admins_may_forget_and_a_refusal_changes_nothing(banked, role):
    tenant, account = banked
    with schema_context(tenant.schema_name):
        with pytest.raises(OperatorRequired):
            forget_subjects([str(account)], by=Operator(Reader(role=role, user_id="9"), "someone"))
        assert SubjectKey.objects.get(subject=str(account)).key is not None
        assert AccountBalance.objects.get(account_id=account).owner == NAME


def test_an_unknown_subject_is_refused_and_nothing_is_erased(banked):
    tenant, account = banked
    with pytest.raises(CommandError, match="No personal data is kept for subject"):
        call_command(
            "forget_subject", str(account), str(uuid.uuid4()), "--tenant", tenant.slug, stdout=io.StringIO()
        )
    with schema_context(tenant.schema_name):
        assert SubjectKey.objects.get(subject=str(account)).key is not None


def test_forgetting_twice_says_so_and_rebuilds_nothing_more(banked):
    tenant, account = banked
    call_command("forget_subject", str(account), "--tenant", tenant.slug, stdout=io.StringIO())
    out = io.StringIO()
    call_command("forget_subject", str(account), "--tenant", tenant.slug, stdout=out)
    assert out.getvalue().strip() == f"{account} was erased before."


# -- the tenant's file, and events from another system ---------------------------------------
def test_an_export_holds_personal_data_opened_and_the_import_seals_it_with_new_keys(banked, tmp_path):
    from intent_project.tenants.models import Tenant
    from tests.integration.test_tenant_portability import _lines, _read_models, _rows

    source, ann = banked
    ben = _open(source, owner="Ben Okonkwo-Laine")
    _settle(source)
    call_command("forget_subject", str(ben), "--tenant", source.slug, stdout=io.StringIO())
    first = tmp_path / "source.jsonl.gz"
    call_command("export_tenant", source.slug, out=str(first))

    lines = _lines(first)
    opened = [
        line["row"]["payload"]["owner"]
        for line in lines
        if line["kind"] == "event" and line["row"]["type"] == "accountOpened"
    ]
    assert opened == [NAME, PLACEHOLDER]
    assert [line["row"]["subject"] for line in lines if line["kind"] == "erasure"] == [str(ben)]
    assert all("key" not in line.get("row", {}) for line in lines)

    copy_slug = "c" + uuid.uuid4().hex[:12]
    call_command("import_tenant", str(first), slug=copy_slug, stdout=io.StringIO())
    copy = Tenant.objects.get(slug=copy_slug)
    with schema_context(copy.schema_name):
        keys = dict(SubjectKey.objects.values_list("subject", "key"))
        assert keys[str(ben)] is None and keys[str(ann)] is not None
        with schema_context(source.schema_name):
            assert bytes(SubjectKey.objects.get(subject=str(ann)).key) != bytes(keys[str(ann)])
        assert Event.objects.get(type="accountOpened", stream_id=ann).payload["owner"]["sealed"]
    assert _places_holding(copy.schema_name, NAME) == ["projections_app_accountbalance.owner"]
    assert _read_models(copy) == _read_models(source)
    second = tmp_path / "copy.jsonl.gz"
    call_command("export_tenant", copy_slug, out=str(second))
    assert _rows(second) == _rows(first)
    # Ben stays erased in the copy: no new personal data for him there either.
    with pytest.raises(SubjectErased):
        _open(copy, owner="Ben Again", account=ben)


def test_an_import_of_events_seals_their_personal_data_and_refuses_an_erased_subjects(banked, tmp_path):
    import json

    from events_app.bulk import EventsRefused, import_events

    tenant, ann = banked
    newcomer = uuid.uuid4()
    path = tmp_path / "legacy.jsonl"
    opened = {"stream_type": "account", "version": 1, "type": "accountOpened"}
    path.write_text(
        json.dumps(
            {
                **opened,
                "stream_id": str(newcomer),
                "payload": {"owner": "Cy Legacy-Person", "currency": "EUR"},
            }
        )
        + "\n"
    )
    with schema_context(tenant.schema_name):
        import_events(path, tenant.schema_name)
        stored = Event.objects.get(stream_id=newcomer).payload["owner"]
        assert stored["subject"] == str(newcomer) and "sealed" in stored
        assert (
            PostgresEventStore(get_registry()).read_stream("account", newcomer)[0].event.owner
            == "Cy Legacy-Person"
        )
    assert "events_app_event.payload" not in _places_holding(tenant.schema_name, "Cy Legacy-Person")

    call_command("forget_subject", str(newcomer), "--tenant", tenant.slug, stdout=io.StringIO())
    again = uuid.uuid4()
    path.write_text(
        json.dumps({**opened, "stream_id": str(again), "payload": {"owner": "Dee", "currency": "EUR"}})
        + "\n"
        + json.dumps(
            {
                **opened,
                "type": "accountOpened",
                "stream_id": str(newcomer),
                "version": 2,
                "payload": {"owner": "Cy Again", "currency": "EUR"},
            }
        )
        + "\n"
    )
    with schema_context(tenant.schema_name):
        before = Event.objects.count()
        with pytest.raises(EventsRefused, match="line 2: The personal data of subject"):
            import_events(path, tenant.schema_name)
        assert Event.objects.count() == before
        assert not SubjectKey.objects.filter(subject=str(again)).exists()  # refused: no key either
