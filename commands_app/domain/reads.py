"""Who may read what: each slice's declaration, beside its command `ACCESS`.

Plain Python. A slice names its read models by their exposed name (`"account_balances"`)
and says, per read model, which roles read every row, which read only the rows that are
theirs (the row's `own_field` holds the reader's user id), and which fields stay hidden
from which role. It also says which roles read the slice's commands and events in full;
every member still sees the commands it sent itself, and the events those recorded.

The tenant `admin` reads everything; nothing here has to say so. Whatever no slice
declares (a read model, or a slice with no `READS`) is read by no role but `admin`.
`commands_app/read_policy.py` is the one module that evaluates these declarations.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class RowScope(enum.Enum):
    """How many rows of a read model one role reads."""

    ALL = "all"
    OWN = "own"
    NONE = "none"


@dataclass(frozen=True)
class ReadRule:
    """Who reads one read model.

    `all_rows`: roles that read every row. `own_rows`: roles that read the rows whose
    `own_field` equals their user id. `redacted`: role -> fields that role never sees,
    whatever rows it reads. A role in neither set reads nothing of the model.
    """

    all_rows: frozenset[str] = frozenset()
    own_rows: frozenset[str] = frozenset()
    own_field: str | None = None
    redacted: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def scope(self, role: str | None) -> RowScope:
        if role in self.all_rows:
            return RowScope.ALL
        if role in self.own_rows:
            return RowScope.OWN
        return RowScope.NONE

    def hidden_fields(self, role: str | None) -> frozenset[str]:
        return self.redacted.get(role or "", frozenset())

    def problems(self, read_model: str) -> list[tuple[str, str]]:
        """Inconsistencies a start-up check reports (see `Registry.problems`)."""
        found: list[tuple[str, str]] = []
        if self.own_rows and not self.own_field:
            found.append(("intent.E018", f"read model '{read_model}' grants own rows but names no own_field"))
        both = self.all_rows & self.own_rows
        if both:
            found.append(
                (
                    "intent.E019",
                    f"read model '{read_model}' grants {sorted(both)} both all rows and own rows",
                )
            )
        return found


@dataclass(frozen=True)
class SliceReads:
    """A slice's whole read declaration.

    `read_models`: exposed read-model name -> its rule. `messages`: roles that read every
    command and event of the slice (payloads, usernames and all); others see only their own.
    """

    read_models: Mapping[str, ReadRule] = field(default_factory=dict)
    messages: frozenset[str] = frozenset()
