"""Who may send which banking command; the transfer saga's steps are nobody's to send."""

from __future__ import annotations

import pytest

from commands_app.domain.errors import Forbidden
from commands_app.domain.registry import Registry
from commands_app.slices import banking, system
from intent_project.tenants.roles import Role

PUBLIC = ["openAccount", "depositMoney", "withdrawMoney", "closeAccount", "transferMoney"]
INTERNAL = [
    "debitAccountForTransfer",
    "creditAccountForTransfer",
    "refundAccountForTransfer",
    "markTransferCompleted",
    "markTransferRefunded",
    "markTransferDeclined",
]

ALLOWED = {
    "banker": set(PUBLIC),
    "teller": {"depositMoney", "withdrawMoney", "transferMoney"},
    "admin": set(PUBLIC),
    "developer": set(),
    "tester": set(),
    "system": set(),
    "viewer": set(),
    None: set(),
}


@pytest.fixture
def registry() -> Registry:
    return Registry([system.SLICE, banking.SLICE])


def test_the_banking_slice_registers_beside_the_system_slice_without_problems(registry):
    assert registry.problems() == []
    assert {c for c, cls in registry.commands.items() if cls.INTERNAL} == set(INTERNAL)
    assert set(registry.commands) >= set(PUBLIC) | set(INTERNAL)
    assert {"account", "transfer"} <= set(registry.aggregates)
    assert "transfer_saga" in registry.sagas


@pytest.mark.parametrize("role", list(ALLOWED))
@pytest.mark.parametrize("command", PUBLIC)
def test_the_registry_lets_each_role_send_exactly_its_banking_commands(registry, role, command):
    if command in ALLOWED[role]:
        registry.authorize(role, command)
    else:
        with pytest.raises(Forbidden) as err:
            registry.authorize(role, command)
        assert err.value.code == "forbidden"
        assert err.value.details["command"] == command
        assert role not in err.value.details["allowed_roles"]


@pytest.mark.parametrize("role", [*ALLOWED, "not-a-role"])
@pytest.mark.parametrize("command", INTERNAL)
def test_internal_commands_are_forbidden_to_every_role_the_admin_included(registry, role, command):
    with pytest.raises(Forbidden) as err:
        registry.authorize(role, command)

    assert err.value.code == "internal_command"
    assert err.value.details["allowed_roles"] == []
    assert registry.roles_for(command) == []


def test_every_role_the_slice_grants_is_a_tenant_role():
    assert set(banking.SLICE.access) <= set(Role.values)


def test_the_registry_describes_internal_commands_as_such(registry):
    described = {c["type"]: c for c in registry.describe()["commands"]}

    assert {t for t in PUBLIC + INTERNAL if described[t]["internal"]} == set(INTERNAL)
    assert described["transferMoney"]["roles"] == ["admin", "banker", "teller"]
    assert described["openAccount"]["roles"] == ["admin", "banker"]
