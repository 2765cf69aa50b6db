"""Read models of the banking slice. Money is a bigint of minor units, never a float."""

from __future__ import annotations

from django.db import models


class AccountBalance(models.Model):
    """One row per opened account: who, which currency, how much, open or closed."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    account_id = models.UUIDField(primary_key=True)
    owner = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    balance = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # The account stream's version last applied: a replayed event is a no-op.
    last_event_version = models.PositiveIntegerField()
    last_position = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["account_id"]

    def __str__(self) -> str:
        return f"account {self.account_id} ({self.currency} {self.balance})"


class StatementLine(models.Model):
    """One line per money movement on an account, keyed by the event that moved it."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        WITHDRAWAL = "withdrawal"
        TRANSFER_OUT = "transfer_out"
        TRANSFER_IN = "transfer_in"
        REFUND = "refund"

    event_id = models.UUIDField(primary_key=True)
    account_id = models.UUIDField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed: money out of the account is negative.
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    balance_after = models.BigIntegerField()
    transfer_id = models.UUIDField(null=True, blank=True)
    position = models.BigIntegerField()
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["position"]
        indexes = [
            # An account's statement, in log order.
            models.Index(fields=["account_id", "position"], name="statement_account_position"),
            models.Index(fields=["transfer_id"], name="statement_transfer"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on {self.account_id}"


class TransferStatus(models.Model):
    """Where each transfer stands: requested, debited, then completed, refunded or declined."""

    class Status(models.TextChoices):
        REQUESTED = "requested"
        DEBITED = "debited"
        COMPLETED = "completed"
        DECLINED = "declined"
        REFUNDED = "refunded"

    transfer_id = models.UUIDField(primary_key=True)
    from_account_id = models.UUIDField()
    to_account_id = models.UUIDField()
    amount = models.BigIntegerField()
    # The one the request named, else the source account's once debited or declined; null
    # while no one has named one (e.g. a transfer from an account that was never opened).
    # Null, not "": the API shows it, and "" reads as a currency code that is empty.
    currency = models.CharField(max_length=3, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=Status.choices)
    # Why a leg was declined (e.g. insufficient_funds, account_closed); blank otherwise.
    reason = models.CharField(max_length=32, blank=True)
    requested_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    # The events of one transfer live in several streams (the transfer's and two
    # accounts'), so the guard against re-applying one is the log position.
    last_position = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["transfer_id"]
        verbose_name_plural = "transfers"
        indexes = [
            models.Index(fields=["status"], name="transfer_status"),
        ]

    def __str__(self) -> str:
        return f"transfer {self.transfer_id} ({self.status})"


class BankTotals(models.Model):
    """Tenant-wide figures per currency. `total_balance` is the sum of account balances;
    `in_flight` is money debited from a source and not yet credited or refunded. Their sum
    is everything ever deposited minus everything withdrawn."""

    currency = models.CharField(max_length=3, primary_key=True)
    total_balance = models.BigIntegerField(default=0)
    accounts_open = models.IntegerField(default=0)
    in_flight = models.BigIntegerField(default=0)
    last_position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["currency"]
        verbose_name_plural = "bank totals"

    def __str__(self) -> str:
        return f"totals {self.currency}"
