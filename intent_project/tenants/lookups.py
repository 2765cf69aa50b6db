"""A short-lived, per-process cache of the tenant lookup every tenant API request makes.

Resolving `/t/<slug>/` to a Tenant is a query per request; tenants and their domains change
rarely, so each web process keeps the answer for `TENANT_CACHE_SECONDS` (0 turns it off).
A tenant or domain changed in this process is forgotten at once (signals below), in other
processes within the TTL.

Nothing that authorizes is cached here: roles and API tokens are read from the database
on every request (tenants/services.role_in, api/authentication.py), so a removed membership
or a revoked token is refused by every process at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

T = TypeVar("T")
_MISSING = object()


class TtlCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get_or_load(self, key: Any, load: Callable[[], T]) -> T:
        ttl = float(settings.TENANT_CACHE_SECONDS)
        if ttl <= 0:
            return load()
        now = time.monotonic()
        hit = self._entries.get(key, _MISSING)
        if hit is not _MISSING and hit[0] > now:  # type: ignore[index]
            value: T = hit[1]  # type: ignore[index]
            return value
        value = load()
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; entries are cheap to reload
            self._entries[key] = (now + ttl, value)
        return value

    def forget(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


tenants_by_domain = TtlCache()


def connect_invalidation() -> None:
    """Forget cached tenants of this process when their rows change here."""
    from django.db.models.signals import post_delete, post_save

    from intent_project.tenants.models import Domain, Tenant

    def forget_tenants(sender: Any, instance: Any, **kwargs: Any) -> None:
        tenants_by_domain.clear()

    for signal in (post_save, post_delete):
        signal.connect(forget_tenants, sender=Tenant, weak=False, dispatch_uid=f"tenants-{signal}")
        signal.connect(forget_tenants, sender=Domain, weak=False, dispatch_uid=f"domains-{signal}")
