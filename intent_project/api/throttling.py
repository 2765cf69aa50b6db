"""Rate limits shared by every web process, and the login lockout's answer.

Counters live in the shared cache (Redis, settings.CACHES), so N web processes do not grant
N times the limit. Rates come from settings.THROTTLE_RATES (environment, DRF rate syntax)
and are read on every request, so an empty rate switches a throttle off.

DRF's SimpleRateThrottle reads a history list, appends and writes it back: two requests
that read at once both pass, which is exactly what a burst of parallel logins does. Here
each window is one counter bumped with Redis' atomic INCR, so the N+1st request of a
window is refused however many arrive together (a fixed window: at most twice the rate
across a window boundary, which is fine for abuse limits).

Throttles run in DRF's `initial()`, before the view: a refused login never reaches the
password hasher, so a flood of wrong passwords costs a cache round trip each, not a
PBKDF2 computation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from intent_project.api.errors import error_response

log = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'20/min' -> (20, 60); empty or None -> None (no limit). Same syntax as DRF's."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0]]


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address TRUSTED_PROXIES hops back in
    X-Forwarded-For. Without trusted proxies the header is ignored: anyone can write it."""
    proxies = settings.TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return str(request.META.get("REMOTE_ADDR", ""))


class WindowThrottle(BaseThrottle):
    """One atomic counter per (scope, identity, window)."""

    scope = ""
    # The HTTP methods counted (None: every one); the OpenAPI document lists 429 on those.
    methods: frozenset[str] | None = None
    timer = staticmethod(time.time)  # as DRF's throttles: a test can hold the clock

    def __init__(self) -> None:
        self._wait = 0.0

    def identity(self, request: Request, view: Any) -> str | None:
        """What is counted (a username, an address, a tenant); None: not this request."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.methods is not None and request.method not in self.methods:
            return True
        limit = parse_rate(settings.THROTTLE_RATES.get(self.scope))
        if limit is None:
            return True
        ident = self.identity(request, view)
        if ident is None:
            return True
        count, period = limit
        now = self.timer()
        window = int(now // period)
        # Hashed: a username may hold characters a cache key should not (spaces, controls).
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        key = f"throttle:{self.scope}:{digest}:{window}"
        try:
            used = self._bump(key, period)
        except RedisError:
            # Fail open: with Redis down a command must still be stored (the database is the
            # truth; the sweep sends it once the broker is back), and logins still meet the
            # lockout, which counts in the database.
            log.warning("throttle %s skipped: the shared cache is unavailable", self.scope)
            return True
        if used <= count:
            return True
        self._wait = (window + 1) * period - now
        return False

    @staticmethod
    def _bump(key: str, period: int) -> int:
        # One round trip on the command path: in one MULTI/EXEC, create the counter with its
        # expiry if it is missing, then INCR it (atomic across processes, and the counter
        # cannot expire between the two and be left without a TTL).
        redis_cache = cache._cache  # type: ignore[attr-defined]  # django's RedisCacheClient
        full_key = cache.make_and_validate_key(key)
        pipe = redis_cache.get_client(full_key, write=True).pipeline(transaction=True)
        pipe.set(full_key, 0, nx=True, ex=period + 1)
        pipe.incr(full_key)
        return int(pipe.execute()[1])

    def wait(self) -> float | None:
        return max(1.0, math.ceil(self._wait))


def _login_username(request: Request) -> str | None:
    data = request.data if isinstance(request.data, dict) else {}
    username = data.get("username")
    return username.strip().lower()[:150] if isinstance(username, str) and username.strip() else None


class LoginPerUsernameThrottle(WindowThrottle):
    """Login attempts per username, from any address (password guessing against one account)."""

    scope = "login_username"

    def identity(self, request: Request, view: Any) -> str | None:
        return _login_username(request)


class LoginPerAddressThrottle(WindowThrottle):
    """Login attempts per client address, for any username (spraying many accounts)."""

    scope = "login_ip"

    def identity(self, request: Request, view: Any) -> str | None:
        return client_ip(request._request) or None


class _CommandSubmissionThrottle(WindowThrottle):
    """Counts only submissions (POST); reading commands is not limited here."""

    methods = frozenset({"POST"})


class CommandsPerUserThrottle(_CommandSubmissionThrottle):
    scope = "commands_user"

    def identity(self, request: Request, view: Any) -> str | None:
        return str(request.user.pk) if request.user.is_authenticated else client_ip(request._request)


class CommandsPerTenantThrottle(_CommandSubmissionThrottle):
    scope = "commands_tenant"

    def identity(self, request: Request, view: Any) -> str | None:
        tenant = getattr(request, "tenant", None)
        return getattr(tenant, "schema_name", None)


COMMAND_THROTTLES = [CommandsPerUserThrottle, CommandsPerTenantThrottle]
LOGIN_THROTTLES = [LoginPerAddressThrottle, LoginPerUsernameThrottle]


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> JsonResponse:
    """django-axes' answer to a locked-out login, in the one error shape, API and admin alike.

    The same for every username, existing or not, so it tells nothing about accounts.
    """
    cool_off = settings.AXES_COOLOFF_TIME.total_seconds()
    response = error_response(
        429,
        "locked_out",
        "Too many failed logins: logins are refused for a while, even with the right password.",
        {"retry_after_seconds": int(cool_off)},
        request=request,
    )
    response["Retry-After"] = str(int(cool_off))
    return response
