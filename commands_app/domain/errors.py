"""Our own errors. Infrastructure errors are mapped to these at one boundary each.

Each carries a stable machine-readable `code`, a human `message` and optional `details`.
"""

from __future__ import annotations

from typing import Any


class IntentError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details if details is not None else {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class DomainError(IntentError):
    """A business rule said no. The command fails at once and is never retried."""

    code = "domain_error"


class RetryableDomainError(IntentError):
    """A business rule said "not now". The command is retried with backoff, then fails."""

    code = "retryable_domain_error"


class ConcurrencyError(IntentError):
    """The stream moved on since the decision was made (optimistic concurrency)."""

    code = "concurrency_conflict"


class UnknownCommandType(IntentError):
    code = "unknown_command_type"


class InvalidPayload(IntentError):
    code = "invalid_payload"


class Forbidden(IntentError):
    code = "forbidden"


class IdempotencyConflict(IntentError):
    code = "idempotency_conflict"


class TenantSuspended(IntentError):
    """The tenant reads but takes no commands until a platform admin lifts the suspension."""

    code = "tenant_suspended"
