"""Small pieces of HTML the admin pages share: short ids, status badges, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString


def short_id(value: Any) -> SafeString | str:
    """The first 8 characters of an id; the whole id on hover, and copied on a click
    (intent/admin.js)."""
    if value in (None, ""):
        return "—"
    full = str(value)
    return format_html('<span class="intent-id" title="{}" data-copy="{}">{}</span>', full, full, full[:8])


def status_badge(status: str) -> SafeString:
    return format_html('<span class="intent-status intent-status-{}">{}</span>', status, status)


def when(value: datetime | None) -> str:
    """A time to the second, in UTC, the way every admin list shows it."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
