"""Who may send what in banking. Tellers move money at the counter; bankers also open and
close accounts. The tenant admin may send every public command (the registry adds that);
the transfer saga's internal steps are granted to no role at all."""

from __future__ import annotations

from commands_app.domain.messages import Command
from commands_app.slices.banking.payloads import (
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)

_MOVE_MONEY: frozenset[type[Command]] = frozenset({DepositMoney, WithdrawMoney, TransferMoney})

ACCESS: dict[str, frozenset[type[Command]]] = {
    "teller": _MOVE_MONEY,
    "banker": _MOVE_MONEY | {OpenAccount, CloseAccount},
}
