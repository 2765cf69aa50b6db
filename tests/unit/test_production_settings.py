"""Production settings: no start without SECRET_KEY outside DEBUG, and `check --deploy`
clean with exactly the environment README.md documents ("Running in production")."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

from tests.conftest import ROOT

# Variables of the test session that must not leak into the checked process.
_OURS = re.compile(r"^(DEBUG|SECRET_KEY|ALLOWED_HOSTS|CSRF_.*|SECURE_.*|SESSION_.*|DATABASE_.*|REDIS_URL)$")


def documented_production_env() -> dict[str, str]:
    """The `KEY=value` lines of README's production block, placeholders filled in."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- production-env[^>]*-->\s*```sh\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md lost its production-env block"
    env = {}
    for line in block.group(1).splitlines():
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_]+", key), f"not KEY=value: {line!r}"
        env[key] = value
    assert env["SECRET_KEY"].startswith("<"), "the README must not show a real key"
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not _OURS.match(k)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_environment():
    env = documented_production_env()

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_warns_without_the_https_settings():
    """The clean result above comes from the documented settings, not from a check that sees nothing."""
    env = {k: v for k, v in documented_production_env().items() if not k.startswith(("SECURE_", "SESSION_"))}

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode != 0
    for check_id in ("security.W004", "security.W008", "security.W012"):
        assert check_id in result.stderr + result.stdout


def test_without_secret_key_and_debug_unset_the_process_refuses_to_start():
    env = documented_production_env()
    del env["SECRET_KEY"], env["DEBUG"]

    result = manage(env, "check")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "System check identified" not in result.stdout


def test_an_empty_secret_key_is_refused_as_well():
    env = {**documented_production_env(), "SECRET_KEY": ""}

    result = manage(env, "check")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_a_malformed_proxy_header_setting_stops_the_process():
    env = {**documented_production_env(), "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO"}

    result = manage(env, "check")

    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr
