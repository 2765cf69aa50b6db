"""The sweep re-sends exactly what is due: stale pending commands, due schedules, lagging projections."""

from __future__ import annotations

import io
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import Command
from intent_project.tasks import sweep_schema
from tests.integration.helpers import submit


def _age(tenant, command_id, seconds):
    with schema_context(tenant.schema_name):
        Command.objects.filter(pk=command_id).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def test_it_resends_a_stale_pending_command_once_per_staleness_period(fresh_tenant, settings):
    settings.COMMAND_STALE_AFTER_SECONDS = 10
    cmd = submit(fresh_tenant, "logMessage", {"message": "stuck"})
    assert sweep_schema(fresh_tenant.schema_name)["commands"] == 0  # fresh: its own message may be queued
    _age(fresh_tenant, cmd.id, 60)
    assert sweep_schema(fresh_tenant.schema_name)["commands"] == 1
    assert sweep_schema(fresh_tenant.schema_name)["commands"] == 0  # just re-sent: not again yet


def test_it_leaves_a_scheduled_command_alone_until_it_is_due(fresh_tenant):
    later = timezone.now() + timedelta(hours=1)
    with schema_context(fresh_tenant.schema_name):
        from commands_app import bus

        cmd = bus.submit(
            schema_name=fresh_tenant.schema_name,
            tenant=fresh_tenant.slug,
            type_name="logMessage",
            payload={"message": "later"},
            role="developer",
            user_id="1",
            not_before=later,
        ).command
        _age(fresh_tenant, cmd.id, 600)
        assert sweep_schema(fresh_tenant.schema_name)["commands"] == 0
        # Processing it early (a stray message) keeps it pending and asks to come back later.
        early = processing.process(cmd.id)
        assert isinstance(early, processing.Postponed), early
        assert 3500 < early.delay <= 3600
        assert Command.objects.get(pk=cmd.id).status == "pending"
        Command.objects.filter(pk=cmd.id).update(not_before=timezone.now() - timedelta(seconds=1))
    assert sweep_schema(fresh_tenant.schema_name)["commands"] == 1


def test_it_wakes_projections_that_lag_behind_the_log(fresh_tenant):
    cmd = submit(fresh_tenant, "logMessage", {"message": "unprojected"})
    with schema_context(fresh_tenant.schema_name):
        processing.process(cmd.id)
    assert sweep_schema(fresh_tenant.schema_name)["projections_behind"] == 1


def test_re_sends_of_a_long_pending_command_back_off(fresh_tenant, settings):
    settings.COMMAND_STALE_AFTER_SECONDS = 10
    cmd = submit(fresh_tenant, "logMessage", {"message": "backlog"})

    def at(created_ago, swept_ago):
        now = timezone.now()
        with schema_context(fresh_tenant.schema_name):
            Command.objects.filter(pk=cmd.id).update(
                created_at=now - timedelta(seconds=created_ago),
                updated_at=now - timedelta(seconds=created_ago),
                swept_at=now - timedelta(seconds=swept_ago),
            )
        return sweep_schema(fresh_tenant.schema_name)["commands"]

    # Re-sent when it was 100 s old; 60 s later that is not long enough (wait >= 100 s) ...
    assert at(created_ago=160, swept_ago=60) == 0
    # ... 110 s later it is.
    assert at(created_ago=210, swept_ago=110) == 1


def test_the_sweep_command_resends_what_is_due(fresh_tenant, settings):
    settings.COMMAND_STALE_AFTER_SECONDS = 10
    cmd = submit(fresh_tenant, "logMessage", {"message": "by hand"})
    _age(fresh_tenant, cmd.id, 60)
    out = io.StringIO()
    call_command("sweep", tenant=[fresh_tenant.slug], stdout=out)
    assert out.getvalue().startswith(f"{fresh_tenant.slug}: re-sent 1 command(s)")
