"""Typed readers for environment variables that fail loudly on bad values.

Settings are driven entirely by the environment; a typo like ``DEBUG=ture`` must stop
the process at start-up rather than silently fall back to a default.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use one of 1/0, true/false, yes/no)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int_map(name: str, default: dict[str, int], *, minimum: int | None = None) -> dict[str, int]:
    """`key=int` pairs separated by commas, e.g. ``SNAPSHOT_EVERY_BY_TYPE=system=50,account=20``."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    result: dict[str, int] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"{name}: {item!r} is not key=integer")
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {value!r} (for {key.strip()!r}) is not an integer") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name}: {key.strip()}={number} must be at least {minimum}")
        result[key.strip()] = number
    return result


def env_pair(name: str, default: tuple[str, str] | None) -> tuple[str, str] | None:
    """Two comma-separated values, e.g. ``SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https``."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    first, sep, second = raw.partition(",")
    if not sep or not first.strip() or not second.strip() or "," in second:
        raise ImproperlyConfigured(f"{name}={raw!r} is not two comma-separated values (e.g. HEADER,value)")
    return first.strip(), second.strip()


def env_origins(name: str, default: list[str]) -> list[str]:
    """Comma-separated origins with their scheme (``https://intent.example.com``), as
    CSRF_TRUSTED_ORIGINS needs them: a bare host would silently never match."""
    origins = env_list(name, default)
    for origin in origins:
        if "://" not in origin:
            raise ImproperlyConfigured(f"{name}: {origin!r} needs its scheme, e.g. https://{origin}")
    return origins
