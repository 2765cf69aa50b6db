"""Per-projection checkpoint and health, one row per projection in each tenant schema."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class ProjectionStatus(models.TextChoices):
    RUNNING = "running", "Running"
    STALLED = "stalled", "Stalled"  # stopped at a failing event until an operator acts


class ProjectionState(models.Model):
    name = models.CharField(max_length=100, primary_key=True)
    version = models.PositiveIntegerField(default=1)
    # Every event at or below `position` has been applied (or was not handled). This row is
    # updated in the same transaction as the read-model rows it vouches for.
    position = models.BigIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=ProjectionStatus.choices, default=ProjectionStatus.RUNNING
    )
    failures = models.PositiveIntegerField(default=0)
    last_error = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "projection"

    def __str__(self) -> str:
        return f"{self.name} v{self.version} @ {self.position} ({self.status})"


class DeadLetter(models.Model):
    """An event an operator chose to skip for one projection, kept for inspection and replay.

    The runner leaves out events with an unreplayed dead letter for that projection, so a
    skip survives rebuilds; replaying applies the event and clears it.
    """

    projection = models.CharField(max_length=100)
    event_id = models.UUIDField()
    position = models.BigIntegerField()
    event_type = models.CharField(max_length=100)
    error = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)
    skipped_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["projection", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["projection", "event_id"], name="one_dead_letter_per_projection_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.projection}: {self.event_type} @ {self.position}"
