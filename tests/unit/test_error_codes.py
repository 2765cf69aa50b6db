"""Every error code the API can answer is in errors.ERROR_CODES, the document's `ErrorCode`
enum: a generated client parses an error whose code is not in it as a failure of its own."""

from __future__ import annotations

import re
from pathlib import Path

from intent_project.api import errors

ROOT = Path(__file__).resolve().parents[2]
APPS = ("intent_project", "commands_app", "events_app", "projections_app")
# `ApiError(409, "user_exists", ...)`, `AccessRefused(403, "superuser_only", ...)`,
# `super().__init__(429, "too_many_streams", ...)`: a status, then the code.
STATUS_THEN_CODE = re.compile(r"\(\s*([45]\d\d),\s*\"(\w+)\"")


def _answered_codes() -> set[str]:
    found = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            found |= {code for _, code in STATUS_THEN_CODE.findall(path.read_text())}
    return found


def test_every_code_an_answer_can_carry_is_documented():
    answered = _answered_codes() | set(errors._STATUS_FOR_INTENT) | set(errors._DRF_CODES.values())

    assert answered - set(errors.ERROR_CODES) == set()
    assert {"too_many_waits", "too_many_streams", "projection_behind", "idempotency_conflict"} <= answered
