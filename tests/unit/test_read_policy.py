"""The read policy without a database: the slices' READS as the policy module answers them,
and the start-up checks that name what is undeclared or inconsistent."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.db.models import Q

from commands_app import read_policy
from commands_app.domain.reads import ReadRule, RowScope, SliceReads
from commands_app.domain.registry import Registry
from commands_app.read_policy import Reader, read_model_scope, readable_slices
from commands_app.slices.banking import SLICE as BANKING
from commands_app.slices.system import SLICE as SYSTEM

ROLES = ("admin", "developer", "tester", "system", "banker", "teller", "viewer")
READ_MODELS = (
    "system_status",
    "system_metrics",
    "account_balances",
    "account_statement",
    "transfers",
    "bank_totals",
)
# The README's "Who reads what" table, by hand.
TABLE = {
    "system_status": {
        "admin": "all",
        "developer": "all",
        "system": "all",
        "viewer": "all",
        "tester": "own",
    },
    "system_metrics": {"admin": "all", "developer": "all", "system": "all", "viewer": "all", "tester": "all"},
    "account_balances": {"admin": "all", "banker": "all", "teller": "all"},
    "account_statement": {"admin": "all", "banker": "all", "teller": "all"},
    "transfers": {"admin": "all", "banker": "all", "teller": "all"},
    "bank_totals": {"admin": "all", "banker": "all"},
}


@pytest.fixture
def registry() -> Registry:
    return Registry([SYSTEM, BANKING])


def reader(role: str | None, user_id: str | None = "42", superuser: bool = False) -> Reader:
    return Reader(role=role, user_id=user_id, superuser=superuser)


@pytest.mark.parametrize("name", READ_MODELS)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_each_read_model_as_the_table_says(registry, role, name):
    scope = read_model_scope(reader(role), name, registry)

    assert scope.rows.value == TABLE[name].get(role, "none")


def test_a_tester_reads_only_the_system_rows_it_tested(registry):
    scope = read_model_scope(reader("tester", user_id="7"), "system_status", registry)

    assert scope.rows is RowScope.OWN
    assert scope.filter == Q(last_tester_id="7")


def test_own_rows_without_a_user_are_no_rows(registry):
    assert not read_model_scope(reader("tester", user_id=None), "system_status", registry).allowed


def test_a_viewer_reads_system_status_without_what_testers_typed(registry):
    scope = read_model_scope(reader("viewer"), "system_status", registry)

    assert scope.redacted == {"last_parameters", "last_message"}
    row = {"system_id": "s", "last_message": "secret", "last_parameters": {"k": "v"}, "last_result": "ok"}
    assert read_policy.redact(row, scope) == {
        "system_id": "s",
        "last_message": None,
        "last_parameters": None,
        "last_result": "ok",
    }


@pytest.mark.parametrize("user", [reader(None), reader(None, user_id=None)])
def test_no_membership_reads_nothing(registry, user):
    assert all(not read_model_scope(user, name, registry).allowed for name in READ_MODELS)
    assert read_policy.visible_commands(user, registry) == read_policy.NOTHING
    assert read_policy.visible_events(user, registry) == read_policy.NOTHING


def test_a_superuser_without_membership_and_the_tenant_admin_read_everything(registry):
    for user in (reader(None, superuser=True), reader("admin")):
        assert all(read_model_scope(user, n, registry).rows is RowScope.ALL for n in READ_MODELS)
        assert read_model_scope(user, "a_model_nobody_declared", registry).allowed
        assert read_policy.visible_commands(user, registry) == read_policy.EVERYTHING


def test_a_read_model_nobody_declares_is_read_by_no_role_but_admin(registry):
    for role in ROLES:
        assert read_model_scope(reader(role), "a_model_nobody_declared", registry).allowed is (
            role == "admin"
        )


def test_a_slice_without_reads_shows_its_messages_to_the_admin_only(registry):
    quiet = Registry([replace(SYSTEM, reads=None), BANKING])

    assert readable_slices(reader("developer"), quiet) == frozenset()
    assert readable_slices(reader("teller"), quiet) == {"banking"}
    assert readable_slices(reader("admin"), quiet) == {"system", "banking"}


@pytest.mark.parametrize(
    ("role", "slices"),
    [
        ("developer", {"system"}),
        ("system", {"system"}),
        ("tester", set()),
        ("viewer", set()),
        ("banker", {"banking"}),
        ("teller", {"banking"}),
        ("admin", {"system", "banking"}),
    ],
)
def test_each_role_reads_the_commands_and_events_of_exactly_these_slices(registry, role, slices):
    assert readable_slices(reader(role), registry) == slices


def test_a_member_sees_the_commands_it_sent_besides_its_slices(registry):
    visible = read_policy.visible_commands(reader("tester", user_id="7"), registry)

    assert visible == Q(type__in=[]) | Q(metadata__user_id="7")


def test_a_teller_sees_every_banking_command_the_saga_steps_included(registry):
    banking_types = sorted(c.TYPE for c in BANKING.command_handlers)

    visible = read_policy.visible_commands(reader("teller", user_id="7"), registry)

    assert "debitAccountForTransfer" in banking_types
    assert visible == Q(type__in=banking_types) | Q(metadata__user_id="7")


def test_the_slices_declare_every_read_model_once_and_consistently(registry):
    assert set(registry.read_rules) == set(READ_MODELS)
    assert registry.problems() == []


def test_the_registry_names_inconsistent_or_missing_declarations():
    sloppy = SliceReads(
        read_models={
            "system_status": ReadRule(own_rows=frozenset({"tester"})),
            "system_metrics": ReadRule(
                all_rows=frozenset({"tester"}), own_rows=frozenset({"tester"}), own_field="x"
            ),
        }
    )
    twice = replace(BANKING, reads=SliceReads(read_models={"system_status": ReadRule()}))
    problems = {check for check, _ in Registry([replace(SYSTEM, reads=sloppy), twice]).problems()}
    undeclared = {check for check, _ in Registry([replace(SYSTEM, reads=None)]).problems()}

    assert {"intent.E017", "intent.E018", "intent.E019"} <= problems
    assert undeclared == {"intent.W020"}


def test_the_system_check_names_a_read_model_without_a_declaration(monkeypatch):
    from projections_app import checks

    without_totals = replace(
        BANKING,
        reads=SliceReads(
            read_models={k: v for k, v in BANKING.reads.read_models.items() if k != "bank_totals"},  # type: ignore[union-attr]
            messages=frozenset({"banker"}),
        ),
    )
    monkeypatch.setattr(checks, "get_registry", lambda: Registry([SYSTEM, without_totals]))

    found = checks.read_models_are_declared()

    assert [(m.id, "bank_totals" in m.msg) for m in found] == [("intent.W105", True)]
    assert found[0].hint


def test_the_system_check_names_unknown_models_fields_and_roles(monkeypatch):
    from projections_app import checks

    wrong = SliceReads(
        read_models={
            "no_such_model": ReadRule(all_rows=frozenset({"viewer"})),
            "system_status": ReadRule(
                all_rows=frozenset({"auditor"}),
                own_rows=frozenset({"tester"}),
                own_field="tester",
                redacted={"viewer": frozenset({"password"}), "developer": frozenset({"system_id"})},
            ),
            "system_metrics": ReadRule(),
        },
        messages=frozenset({"root"}),
    )
    monkeypatch.setattr(checks, "get_registry", lambda: Registry([replace(SYSTEM, reads=wrong), BANKING]))

    found = {(m.id, m.msg) for m in checks.read_models_are_declared()}

    assert ("intent.E106", "READS declares unknown read model 'no_such_model'") in found
    assert ("intent.E107", "read rule of 'system_status' names unknown field 'tester'") in found
    assert ("intent.E107", "read rule of 'system_status' names unknown field 'password'") in found
    assert ("intent.E108", "read rule of 'system_status' names unknown role 'auditor'") in found
    assert (
        "intent.E109",
        "read model 'system_status' is ordered by 'system_id', which 'developer' may not see",
    ) in found
    assert ("intent.E108", "READS of slice 'system' grants its messages to unknown role 'root'") in found


def test_the_running_configuration_passes_every_read_check():
    from projections_app import checks

    assert checks.read_models_are_declared() == []
