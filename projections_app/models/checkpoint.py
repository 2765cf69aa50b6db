"""Per-projection checkpoint and health, one row per projection in each tenant schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from intent_project import jsoncodec
from intent_project.announcements import SweepWork, SweepWorkManager
from intent_project.db import pipeline


class ProjectionStatus(models.TextChoices):
    RUNNING = "running", "Running"
    STALLED = "stalled", "Stalled"  # stopped at a failing event until an operator acts


class ProjectionState(SweepWork):
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
    # What the live read model was built by: the projection's code and read-model shape
    # (see projectors.base.Projection.fingerprint). A mismatch is drift: rebuild.
    fingerprint = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SweepWorkManager()

    class Meta:
        ordering = ["name"]
        verbose_name = "projection"

    def __str__(self) -> str:
        return f"{self.name} v{self.version} @ {self.position} ({self.status})"

    # The sweep watches a checkpoint created, stalled or resumed, swapped to a new version
    # (a rebuild) or moved back (a rewind); not one moving forward, the runner's every batch.
    def creates_sweep_work(self, loaded: Mapping[str, Any] | None) -> bool:
        return (
            loaded is None
            or loaded.get("status", self.status) != self.status
            or loaded.get("version", self.version) != self.version
            or self.position < loaded.get("position", self.position)
        )

    @classmethod
    def update_creates_sweep_work(cls, changes: Mapping[str, Any]) -> bool:
        return not changes.keys().isdisjoint({"status", "version", "position"})

    def save_progress(self) -> None:
        """Save a batch's progress (position, failures, last_error, retry_at): the runner's
        every batch, so one prepared statement (intent_project/db/pipeline.py) instead of
        the ORM's UPDATE built anew. A save that creates sweep work (a position moved back)
        goes through save() and its mark."""
        if self.creates_sweep_work(self._loaded):
            self.save(update_fields=["position", "failures", "last_error", "retry_at", "updated_at"])
            return
        self.updated_at = timezone.now()
        last_error = None if self.last_error is None else jsoncodec.dumps(self.last_error)
        pipeline.execute(
            f'UPDATE "{self._meta.db_table}" SET position = %s, failures = %s, last_error = %s::jsonb,'
            " retry_at = %s, updated_at = %s WHERE name = %s",
            [self.position, self.failures, last_error, self.retry_at, self.updated_at, self.name],
        )
        self.remember_saved()


class DeadLetter(SweepWork):
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

    # Every write (recorded, replayed) marks the tenant: the sweep's /metrics figures change.
    objects = SweepWorkManager()

    class Meta:
        ordering = ["projection", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["projection", "event_id"], name="one_dead_letter_per_projection_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.projection}: {self.event_type} @ {self.position}"


class RebuildStatus(models.TextChoices):
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    SWAPPED = "swapped", "Done (live)"
    FAILED = "failed", "Failed"


class RebuildJob(models.Model):
    """One rebuild of one projection beside its live version; progress for the admin."""

    projection = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RebuildStatus.choices, default=RebuildStatus.RUNNING)
    events_total = models.BigIntegerField(default=0)
    events_done = models.BigIntegerField(default=0)
    events_per_second = models.FloatField(default=0)
    position = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One running rebuild per projection: two would race for the same swap.
            models.UniqueConstraint(
                fields=["projection"],
                condition=models.Q(status__in=["running", "cancelling"]),
                name="one_active_rebuild_per_projection",
            ),
        ]

    def __str__(self) -> str:
        return f"rebuild {self.projection} v{self.version} ({self.status})"
