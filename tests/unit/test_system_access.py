"""The reference's role -> command model, enforced before any handler runs."""

from __future__ import annotations

import pytest

from commands_app.domain.errors import Forbidden

ALLOWED = {
    "tester": {"logMessage", "emitMultipleEvents", "executeTest"},
    "system": {"simulateFailure", "executeRetryableTest"},
    "developer": {"logMessage", "emitMultipleEvents", "executeTest", "executeRetryableTest"},
    "admin": {
        "logMessage",
        "emitMultipleEvents",
        "executeTest",
        "executeRetryableTest",
        "simulateFailure",
    },
    "viewer": set(),
    None: set(),
}


@pytest.mark.parametrize("role", list(ALLOWED))
@pytest.mark.parametrize(
    "command",
    ["logMessage", "emitMultipleEvents", "executeTest", "executeRetryableTest", "simulateFailure"],
)
def test_each_role_may_send_exactly_its_commands(registry, role, command):
    if command in ALLOWED[role]:
        registry.authorize(role, command)
    else:
        with pytest.raises(Forbidden) as err:
            registry.authorize(role, command)
        assert err.value.details["command"] == command
