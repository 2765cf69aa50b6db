"""When work that did not happen is tried again, and when it is given up: the one policy.

Commands and projection events both back off exponentially (the first wait is the base,
then it doubles) and give up after a configured number of failures in a row: a command
then ends `failed`, a projection `stalled`. A postponed command is woken by a delayed
broker message only when it is due within the message horizon; later ones are left to
the sweep, which re-sends wake-ups from the rows themselves (and backs off per command,
so a long backlog is not re-sent on every sweep).

Settings are read on every call, so a test's `settings` fixture changes the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Model, Q, QuerySet, Value

M = TypeVar("M", bound=Model)

# 2**32 base periods is more than a century at a 1 s base: a cap that keeps the float finite.
_MAX_DOUBLINGS = 32


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a give-up point."""

    base_seconds: float
    max_failures: int

    def delay_after(self, failures: int) -> float | None:
        """Seconds to wait after the `failures`-th failure in a row; None: give up."""
        if failures >= self.max_failures:
            return None
        return float(self.base_seconds * 2 ** min(max(failures - 1, 0), _MAX_DOUBLINGS))


def commands() -> Backoff:
    """Retryable domain errors, lost version races and infrastructure errors of a command.

    COMMAND_MAX_RETRIES counts the tries after the first, so the command gives up on the
    failure after that many retries."""
    return Backoff(settings.COMMAND_RETRY_BACKOFF_SECONDS, settings.COMMAND_MAX_RETRIES + 1)


def projections() -> Backoff:
    """A projection's handler failing on one event; giving up stalls the projection there."""
    return Backoff(settings.PROJECTION_RETRY_BACKOFF_SECONDS, settings.PROJECTION_MAX_FAILURES)


def by_message(delay: float) -> bool:
    """Whether work due in `delay` seconds gets a delayed broker message now.

    Later work is left to the sweep: a message held longer than the broker's visibility
    timeout would be delivered twice (settings refuse a horizon that reaches it)."""
    return delay <= settings.DELAYED_MESSAGE_MAX_SECONDS


def due_for_resend(pending: QuerySet[M], now: datetime) -> QuerySet[M]:
    """The pending commands whose wake-up the sweep sends again.

    Due: quiet for a while (its own message may still be queued) or its scheduled time
    reached, and not re-sent recently. Re-sends back off per command: at least as long
    since the last one as the command had existed by then, so a long backlog gets a few
    re-sends per command (after 1, 2, 4 ... periods), not one per sweep."""
    stale = now - timedelta(seconds=settings.COMMAND_STALE_AFTER_SECONDS)
    return pending.annotate(
        since_created=ExpressionWrapper(F("swept_at") - F("created_at"), output_field=DurationField()),
        since_swept=ExpressionWrapper(
            Value(now, output_field=DateTimeField()) - F("swept_at"), output_field=DurationField()
        ),
    ).filter(
        (Q(not_before__isnull=True, updated_at__lte=stale) | Q(not_before__lte=now))
        & (Q(swept_at__isnull=True) | Q(swept_at__lte=stale, since_created__lte=F("since_swept")))
    )
