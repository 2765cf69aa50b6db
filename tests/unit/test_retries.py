"""One retry and scheduling policy (intent_project.retries), one setting per kind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from intent_project import retries
from tests.conftest import ROOT


def test_a_command_backs_off_from_its_base_and_fails_after_its_retries(settings):
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 0.5
    settings.COMMAND_MAX_RETRIES = 3
    policy = retries.commands()
    # COMMAND_MAX_RETRIES counts the tries after the first: 3 retries, then the 4th failure gives up.
    assert [policy.delay_after(failures) for failures in range(1, 6)] == [0.5, 1.0, 2.0, None, None]


def test_a_command_without_retries_fails_on_its_first_failure(settings):
    settings.COMMAND_MAX_RETRIES = 0
    assert retries.commands().delay_after(1) is None


def test_projections_have_their_own_base_and_give_up_point(settings):
    settings.COMMAND_RETRY_BACKOFF_SECONDS = 100.0
    settings.COMMAND_MAX_RETRIES = 100
    settings.PROJECTION_RETRY_BACKOFF_SECONDS = 0.25
    settings.PROJECTION_MAX_FAILURES = 3
    policy = retries.projections()
    assert [policy.delay_after(failures) for failures in range(1, 5)] == [0.25, 0.5, None, None]


def test_a_very_long_run_of_failures_keeps_a_finite_delay():
    delay = retries.Backoff(base_seconds=1.0, max_failures=10_000).delay_after(5_000)
    assert delay == 2.0**32


def test_only_work_due_within_the_horizon_gets_a_delayed_message(settings):
    settings.DELAYED_MESSAGE_MAX_SECONDS = 60.0
    assert retries.by_message(0.0)
    assert retries.by_message(60.0)
    assert not retries.by_message(60.5)


def _settings_with(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import intent_project.settings"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("horizon", "refused"), [("299", False), ("300", True)])
def test_settings_refuse_a_horizon_the_broker_would_redeliver_within(horizon, refused):
    result = _settings_with(DELAYED_MESSAGE_MAX_SECONDS=horizon, CELERY_VISIBILITY_TIMEOUT="300")
    assert (result.returncode != 0) == refused, result.stderr
    assert ("DELAYED_MESSAGE_MAX_SECONDS" in result.stderr) == refused
