"""The event log and aggregate snapshots (one set of tables per tenant schema)."""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now

from intent_project.jsoncodec import FastJSONField


class Event(models.Model):
    # `position` orders the tenant's log. Appends take a per-tenant table lock (see
    # store.PostgresEventStore.append) so positions are handed out in commit order and a
    # reader that remembers "everything up to N" can never skip a late commit.
    position = models.BigAutoField(primary_key=True)
    id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    stream_type = models.CharField(max_length=64)
    stream_id = models.UUIDField()
    version = models.PositiveIntegerField()
    type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField(default=1)
    # Read with orjson (the log is read far more than it is written); a JSONField to migrations.
    payload = FastJSONField(encoder=DjangoJSONEncoder)
    metadata = FastJSONField(encoder=DjangoJSONEncoder, default=dict)
    correlation_id = models.UUIDField(null=True, db_index=True)
    causation_id = models.UUIDField(null=True)
    command_id = models.UUIDField(null=True, db_index=True)
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["position"]
        constraints = [
            # The optimistic-concurrency guard: two writers that decided on the same
            # version cannot both append; the loser gets ConcurrencyError and re-decides.
            models.UniqueConstraint(
                fields=["stream_id", "stream_type", "version"], name="event_stream_version_unique"
            ),
        ]
        indexes = [
            # Projections read "events of these types after position N".
            models.Index(fields=["type", "position"], name="event_type_position"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.type} {self.stream_type}/{self.stream_id} v{self.version}"


class Snapshot(models.Model):
    """A cache of an aggregate's state at a version. Ignored when it cannot be used."""

    stream_type = models.CharField(max_length=64)
    stream_id = models.UUIDField()
    version = models.PositiveIntegerField()
    schema_version = models.PositiveSmallIntegerField()
    state = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["stream_type", "stream_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream_id", "stream_type", "version"],
                name="snapshot_stream_version_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stream_type}/{self.stream_id} @ v{self.version}"


class SubjectKey(models.Model):
    """A data subject's key for their sealed personal data (commands_app/domain/personal.py).

    Erasing the subject sets `key` to NULL and records who erased them and when: the row
    stays as the tombstone, so a writer racing the erasure finds "erased" rather than
    making a fresh key (see events_app/personal.py, Keyring.ensure). The key never leaves
    this table: no API, admin page or export shows it.
    """

    subject = models.CharField(max_length=200, primary_key=True)
    key = models.BinaryField(null=True, editable=False)
    created_at = models.DateTimeField(db_default=Now())
    erased_at = models.DateTimeField(null=True, blank=True)
    erased_by = models.CharField(max_length=150, blank=True, db_default="")

    class Meta:
        ordering = ["subject"]
        verbose_name = "data subject"
        constraints = [
            # The key and the erasure go together: a live key was never erased, and an
            # erased subject has no key.
            models.CheckConstraint(
                condition=models.Q(key__isnull=True, erased_at__isnull=False)
                | models.Q(key__isnull=False, erased_at__isnull=True),
                name="subject_key_or_erasure",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({'erased' if self.erased_at else 'live'})"
