"""Operator policy, and the write side's operator action: sending a failed command again.

Who may act as an operator is decided here and nowhere else. The API, the tenant admin and
the management commands build an `Operator` for whoever asks and call the service
functions (this module's `retry`, projections_app/operations.py for projections); those
ask `require_operator` before they read or change anything, so a refusal leaves nothing
behind, and every surface answers the same `OperatorRequired` (403 `forbidden` in the API,
a message in the admin). No surface keeps a rule of its own: the admin only asks
`may_operate` to decide which actions to offer.

Management commands act as `Operator.shell()`, with the tenant-admin role: whoever runs
manage.py already holds the database credentials, so the shell is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands_app import bus
from commands_app.domain.errors import Forbidden, IntentError
from commands_app.domain.registry import ADMIN_ROLE
from commands_app.models import Command
from commands_app.read_policy import Reader, api_reader, visible_commands
from intent_project import lifecycle

OPERATOR_ROLES: frozenset[str] = frozenset({ADMIN_ROLE, "developer"})


@dataclass(frozen=True)
class Operator:
    """Who asks for an operator action: what they may read (their role in this tenant, their
    user id) and the name the record keeps (`retried_by`, `skipped_by`)."""

    reader: Reader
    name: str

    @property
    def role(self) -> str | None:
        return self.reader.role

    @classmethod
    def of(cls, user: Any, role: str | None) -> Operator:
        """A signed-in user acting with `role`, their membership's role in this tenant."""
        return cls(Reader.of(user, role), user.get_username())

    @classmethod
    def shell(cls, name: str = "manage.py") -> Operator:
        """A management command: trusted, it acts as the tenant's admin."""
        return cls(Reader(role=ADMIN_ROLE, user_id=None), name)


def api_operator(request: Any) -> Operator:
    """The operator behind an API request (role from the membership, set by IsTenantMember)."""
    return Operator(api_reader(request), request.user.get_username())


class OperatorRequired(Forbidden):
    """An operator action asked by a role that may not operate (the API answers 403 `forbidden`)."""


def may_operate(role: str | None) -> bool:
    return role in OPERATOR_ROLES


def _require(by: Operator, roles: frozenset[str], message: str) -> None:
    if by.role not in roles:
        raise OperatorRequired(message, details={"role": by.role, "allowed_roles": sorted(roles)})


def require_operator(by: Operator) -> None:
    _require(by, OPERATOR_ROLES, "Only the tenant's admins and developers may do this.")


# Erasing a person's data cannot be undone: the tenant's admins only (and the shell).
ERASURE_ROLES: frozenset[str] = frozenset({ADMIN_ROLE})


def may_erase(role: str | None) -> bool:
    return role in ERASURE_ROLES


def require_eraser(by: Operator) -> None:
    _require(by, ERASURE_ROLES, "Only the tenant's admins may erase personal data.")


def retry(command_id: UUID, *, by: Operator) -> Command:
    """Send a failed command again (it appended nothing when it failed).

    Asked in this order, so a refusal tells no more than the caller may know: a command it
    may not see answers as a missing one (`not_found`); then it must be an operator
    (`forbidden`); then its role must be allowed to send the command's type (`forbidden`,
    asked by the bus) and the command must have failed (`not_retryable`).
    """
    if not Command.objects.filter(visible_commands(by.reader), pk=command_id).exists():
        raise IntentError(f"No command {command_id} in this tenant.", code="not_found")
    require_operator(by)
    row = bus.retry(command_id, role=by.role, operator=by.name)
    lifecycle.operator_action("retry", operator=by.name, target=str(command_id), command_type=row.type)
    return row
