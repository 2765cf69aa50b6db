"""Who may send what in banking. Tellers move money at the counter; bankers also open and
close accounts. The tenant admin may send every public command (the registry adds that);
the transfer saga's internal steps are granted to no role at all.

Reading, as a bank would have it: tellers and bankers read accounts, statements and
transfers (and every banking command and event); the bank's totals are for bankers (and
the tenant admin) only. Testers, developers, the system role and viewers read nothing of
banking: money is not theirs to look at unless a slice grants it."""

from __future__ import annotations

from commands_app.domain.messages import DomainCommand
from commands_app.domain.reads import ReadRule, SliceReads
from commands_app.slices.banking.payloads import (
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)

_MOVE_MONEY: frozenset[type[DomainCommand]] = frozenset({DepositMoney, WithdrawMoney, TransferMoney})

ACCESS: dict[str, frozenset[type[DomainCommand]]] = {
    "teller": _MOVE_MONEY,
    "banker": _MOVE_MONEY | {OpenAccount, CloseAccount},
}

_COUNTER = frozenset({"teller", "banker"})

READS = SliceReads(
    read_models={
        "account_balances": ReadRule(all_rows=_COUNTER),
        "account_statement": ReadRule(all_rows=_COUNTER),
        "transfers": ReadRule(all_rows=_COUNTER),
        "bank_totals": ReadRule(all_rows=frozenset({"banker"})),
    },
    messages=_COUNTER,
)
"""Who reads what of banking (the tenant admin reads everything without being named)."""
