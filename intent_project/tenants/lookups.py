"""Short-lived, per-process caches of the three lookups every tenant API request makes.

Resolving `/t/<slug>/` to a Tenant, an API token to its user, and the user to their role
in the tenant are three queries per request, about half of a request's database round
trips (see docs/benchmarks.md). All change rarely, so each web process keeps them for
`TENANT_CACHE_SECONDS` (0 turns the caches off).

Staleness is bounded by that TTL: a membership, token or user changed in this process is
forgotten at once (signals below); in other processes a removed member keeps their role,
and a deleted token or deactivated user keeps working, for at most the TTL. Keep it small.
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
roles = TtlCache()
tokens = TtlCache()  # token key -> (user, token); users are handed out as copies (authentication.py)


def connect_invalidation() -> None:
    """Forget cached roles, tenants and tokens of this process when their rows change here."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save
    from rest_framework.authtoken.models import Token

    from intent_project.tenants.models import Domain, Membership, Tenant

    def forget_roles(sender: Any, instance: Any, **kwargs: Any) -> None:
        roles.forget(lambda key: key == (instance.user_id, instance.tenant_id))

    def forget_tenants(sender: Any, instance: Any, **kwargs: Any) -> None:
        tenants_by_domain.clear()

    def forget_token(sender: Any, instance: Any, **kwargs: Any) -> None:
        tokens.forget(lambda key: key == instance.key)

    def forget_user(sender: Any, instance: Any, **kwargs: Any) -> None:
        tokens.forget(lambda key: True)  # keys do not name their user; tokens reload cheaply

    for signal in (post_save, post_delete):
        signal.connect(forget_token, sender=Token, weak=False, dispatch_uid=f"tokens-{signal}")
        signal.connect(forget_user, sender=get_user_model(), weak=False, dispatch_uid=f"users-{signal}")
        signal.connect(forget_roles, sender=Membership, weak=False, dispatch_uid=f"roles-{signal}")
        signal.connect(forget_tenants, sender=Tenant, weak=False, dispatch_uid=f"tenants-{signal}")
        signal.connect(forget_tenants, sender=Domain, weak=False, dispatch_uid=f"domains-{signal}")
