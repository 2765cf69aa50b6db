"""Personal data, sealed per data subject so that it can be erased from an immutable log.

A slice names the payload fields that hold personal data and whose data it is (the data
subject): `PersonalData(fields=("owner",))` on `openAccount` says "the owner is personal
data of the account this command opens". Those fields are never stored in clear: the
command store, the event store and the snapshots keep them *sealed*, encrypted (AES-GCM)
with a key that belongs to the subject alone. Every read path opens them again with the
subject's key. Erasing a person deletes their key (`forget_subject`): from then on every
sealed value of theirs, in every row ever written and every backup of those rows, reads
as `PLACEHOLDER`, while the events themselves stay immutable and replayable.

A sealed value, in the stored JSON:

    {"$personal": 1, "subject": "<subject id>", "sealed": "<base64 of nonce + ciphertext>"}

and a value written for a subject already erased (a placeholder, nothing to hide):

    {"$personal": 1, "subject": "<subject id>"}

The subject id and the field name are the AES-GCM associated data, so a sealed value
cannot be moved to another subject or field and still open. Plain Python: the keys come
from a `KeySource` (events_app/personal.py keeps them in a table of the tenant's schema).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from commands_app.domain.errors import IntentError

# What an erased field reads as, everywhere: API, admin, projections, aggregates, exports.
PLACEHOLDER = "[erased]"
MARK = "$personal"
FORMAT = 1
KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # the GCM standard nonce; random per value (2^-32 collision odds at 2^32 values per key)


@dataclass(frozen=True)
class PersonalData:
    """Which fields of a command, an event or an aggregate's state are personal data, and
    whose: `subject` names the payload field that holds the subject's id; None (the usual
    case) means the aggregate itself (the command's aggregate, the event's stream)."""

    fields: tuple[str, ...]
    subject: str | None = None


class SubjectErased(IntentError):
    """New personal data for a subject whose data was erased: refused, nothing is stored."""

    code = "subject_erased"


class UnreadableSeal(IntentError):
    """A sealed value that does not open with its subject's key: damaged or moved."""

    code = "unreadable_personal_data"


class KeySource(Protocol):
    def key(self, subject: str) -> bytes | None:
        """The subject's key; None once the subject was erased (or never had one)."""
        ...


def is_sealed(value: Any) -> bool:
    return type(value) is dict and MARK in value


def _aad(subject: str, field: str) -> bytes:
    return f"{subject}\x1f{field}".encode()


def seal(
    key: bytes | None, subject: str, field: str, value: Any, *, aead: AESGCM | None = None
) -> dict[str, Any]:
    """`value` (any JSON value) sealed for `subject`. With no key (the subject was erased)
    only the placeholder itself may be written; anything else raises SubjectErased."""
    if key is None:
        if value == PLACEHOLDER:
            return {MARK: FORMAT, "subject": subject}
        raise SubjectErased(
            f"The personal data of subject {subject} was erased; no new personal data is recorded for it.",
            details={"subject": subject, "field": field},
        )
    nonce = os.urandom(_NONCE_BYTES)
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = (aead or AESGCM(key)).encrypt(nonce, plain, _aad(subject, field))
    return {MARK: FORMAT, "subject": subject, "sealed": base64.b64encode(nonce + sealed).decode()}


def open_sealed(
    key: bytes | None, envelope: Mapping[str, Any], field: str, *, aead: AESGCM | None = None
) -> Any:
    """The value inside `envelope`, or PLACEHOLDER when its subject's key is gone."""
    data = envelope.get("sealed")
    if key is None or data is None:
        return PLACEHOLDER
    subject = str(envelope.get("subject"))
    try:
        raw = base64.b64decode(data)
        plain = (aead or AESGCM(key)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(subject, field))
    except (InvalidTag, ValueError, TypeError) as exc:
        raise UnreadableSeal(
            f"The personal data in field '{field}' of subject {subject} does not open with its key.",
            details={"subject": subject, "field": field},
        ) from exc
    return json.loads(plain)


def fingerprint(key: bytes | None, subject: str, field: str, value: Any) -> str:
    """A stand-in for a personal value inside an idempotency hash: an HMAC under the
    subject's key, so the hash of a body cannot be used to guess a name once the key is
    gone (a plain digest of "Alice" can be found by trying names)."""
    if key is None:
        return f"{MARK}:erased"
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return hmac.new(key, _aad(subject, field) + b"\x1e" + plain, hashlib.sha256).hexdigest()


def subject_of(spec: PersonalData, payload: Mapping[str, Any], aggregate_id: Any) -> str:
    """The data subject of one payload (its aggregate's id unless the spec names a field)."""
    value = aggregate_id if spec.subject is None else payload.get(spec.subject)
    if value is None or value == "":
        raise IntentError(
            f"The data subject field '{spec.subject}' is empty.",
            code="invalid_payload",
            details={"fields": {spec.subject or "aggregate": ["The data subject is required."]}},
        )
    return str(value)


def subjects_in(payload: Mapping[str, Any]) -> set[str]:
    """The subjects of the sealed values at the top of a stored payload."""
    return {str(v["subject"]) for v in payload.values() if is_sealed(v)}
