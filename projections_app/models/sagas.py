"""Saga instances: the state a saga keeps between triggers (one row per saga and key).

A saga's checkpoint is a ProjectionState row like any consumer's; this row is written in
the same transaction as that checkpoint and as the commands the saga issued.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class SagaInstance(models.Model):
    saga = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    state = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    finished = models.BooleanField(default=False)
    # The event (log position) that last changed this instance, and how many triggers it saw.
    last_position = models.BigIntegerField(default=0)
    triggers = models.PositiveIntegerField(default=0)
    correlation_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["saga", "-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["saga", "key"], name="one_instance_per_saga_key"),
        ]

    def __str__(self) -> str:
        return f"{self.saga} [{self.key or 'singleton'}]"
