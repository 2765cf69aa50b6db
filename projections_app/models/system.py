"""Read models of the system slice."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class SystemStatus(models.Model):
    """One row per system aggregate: its latest test and activity."""

    system_id = models.UUIDField(primary_key=True)
    last_test_id = models.UUIDField(null=True, blank=True)
    last_test_name = models.CharField(max_length=200, blank=True)
    last_tester_id = models.CharField(max_length=64, blank=True)
    last_result = models.CharField(max_length=16, blank=True)
    last_parameters = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)
    last_executed_at = models.DateTimeField(null=True, blank=True)
    number_executed_tests = models.PositiveIntegerField(default=0)
    messages_logged = models.PositiveIntegerField(default=0)
    last_message = models.TextField(blank=True)
    last_message_level = models.CharField(max_length=16, blank=True)
    last_event_id = models.UUIDField()
    last_event_version = models.PositiveIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["system_id"]
        verbose_name_plural = "system status"

    def __str__(self) -> str:
        return f"system {self.system_id}"


class SystemMetrics(models.Model):
    """Tenant-wide counters (one row, scope='tenant')."""

    scope = models.CharField(max_length=32, primary_key=True)
    test_count = models.PositiveIntegerField(default=0)
    failed_test_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    last_position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["scope"]
        verbose_name_plural = "system metrics"

    def __str__(self) -> str:
        return f"metrics ({self.scope})"
