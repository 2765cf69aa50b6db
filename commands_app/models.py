"""The command store (per tenant schema)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F
from django.db.models.fields.json import KeyTransform

from intent_project.announcements import SweepWork, SweepWorkManager


class CommandStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # stored, not yet handled
    CONSUMED = "consumed", "Consumed"  # its events are appended
    PROCESSED = "processed", "Processed"  # every projection that handles its events applied them
    FAILED = "failed", "Failed"


FINAL_STATUSES = frozenset({CommandStatus.PROCESSED, CommandStatus.FAILED})


class Command(SweepWork):
    # Client-supplied ids are the idempotency key.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    metadata = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    # sha256 of the canonical request body: same id + same hash = replay, else 409.
    body_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=CommandStatus.choices, default=CommandStatus.PENDING)
    result = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)
    error = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    aggregate_type = models.CharField(max_length=64, blank=True)
    aggregate_id = models.UUIDField(null=True, blank=True)
    correlation_id = models.UUIDField(null=True, db_index=True)
    # What caused this command: the event (or command) a saga reacted to; empty for clients.
    causation_id = models.UUIDField(null=True, blank=True, db_index=True)
    # Highest event position this command produced, and the projections that must pass it
    # before the command is `processed`.
    last_position = models.BigIntegerField(null=True, blank=True)
    awaiting_projections = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    # When the sweep last re-sent this command's wake-up (so it re-sends at most once per
    # staleness period instead of flooding the queue with duplicates during a backlog).
    swept_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = SweepWorkManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The admin's list (newest first, any filter but status or type) and its ranges.
            models.Index(F("created_at").desc(), name="command_created"),
            models.Index(fields=["status", "created_at"], name="command_status_created"),
            models.Index(fields=["type", "created_at"], name="command_type_created"),
            # "The commands I sent" (the read policy, for every member whose role does not
            # read a slice's commands in full), newest first like the list.
            models.Index(
                KeyTransform("user_id", "metadata"),
                F("created_at").desc(),
                name="command_user_created",
            ),
            # The settle step scans only consumed commands.
            models.Index(
                fields=["last_position"],
                name="command_consumed_position",
                condition=models.Q(status="consumed"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    # The sweep follows a command from when it is pending (stored, or set back by an
    # operator's retry) until it is processed (intent_project/sweep_marks.py).
    def creates_sweep_work(self, loaded: Mapping[str, Any] | None) -> bool:
        return self.status == CommandStatus.PENDING and (
            loaded is None or loaded.get("status", self.status) != self.status
        )

    @classmethod
    def update_creates_sweep_work(cls, changes: Mapping[str, Any]) -> bool:
        return changes.get("status") == CommandStatus.PENDING
