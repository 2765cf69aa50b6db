"""The subjects' keys, kept in the tenant's schema, and sealing and opening by the registry.

Every path that stores a command, an event or a snapshot seals the personal fields the
slices declare (commands_app/domain/personal.py); every path that reads one opens them.
A `Keyring` holds the keys for one unit of work (a request, a command batch, a projection
batch, a chunk of an export) and fetches them in one query per batch. It is never kept
longer: an erasure must take effect on the next read, so no key is cached across units of
work or processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection

from commands_app.domain import personal
from commands_app.domain.errors import IntentError
from commands_app.domain.personal import PersonalData
from commands_app.domain.registry import Registry
from commands_app.registry import get_registry
from events_app.models import SubjectKey

Kind = Literal["command", "event", "state"]
_TABLE = SubjectKey._meta.db_table


def _specs(registry: Registry, kind: Kind) -> Mapping[str, PersonalData]:
    if kind == "command":
        return registry.personal_commands
    if kind == "event":
        return registry.personal_events
    return registry.personal_state


class Keyring:
    """The keys of the subjects one unit of work touches (a `KeySource`)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or get_registry()
        self._keys: dict[str, bytes | None] = {}
        self._aead: dict[str, AESGCM] = {}
        self._rows: set[str] = set()  # subjects with a row (a key, or the tombstone)

    # -- keys ---------------------------------------------------------------------------------
    def key(self, subject: str) -> bytes | None:
        if subject not in self._keys:
            self.load([subject])
        return self._keys[subject]

    def load(self, subjects: Iterable[str]) -> None:
        """Fetch the keys of `subjects` not fetched yet (None: erased, or never keyed)."""
        missing = sorted(set(subjects) - self._keys.keys())
        if not missing:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT subject, key FROM {_TABLE} WHERE subject = ANY(%s)", [missing])
            rows = cursor.fetchall()
        for subject in missing:
            self._keys[subject] = None
        for subject, key in rows:
            self._rows.add(subject)
            self._keys[subject] = bytes(key) if key is not None else None

    def ensure(self, subjects: Iterable[str]) -> None:
        """Keys for writing: make one for every subject that has no row yet.

        A subject erased keeps its row with a NULL key (the tombstone), so INSERT ... ON
        CONFLICT DO NOTHING never makes a fresh key for it: racing an erasure, a writer
        either read the old key (and what it seals with it is gone with that key) or finds
        the tombstone. Two writers making the first key of one subject: the second one's
        INSERT waits for the first to commit and does nothing; its SELECT (a new snapshot,
        READ COMMITTED) then reads the first one's key.
        """
        wanted = set(subjects)
        self.load(wanted)
        new = sorted(s for s in wanted if s not in self._rows)
        if not new:
            return
        fresh = [new_key() for _ in new]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_TABLE} (subject, key) SELECT * FROM unnest(%s::text[], %s::bytea[])"
                " ON CONFLICT (subject) DO NOTHING RETURNING subject, key",
                [new, fresh],
            )
            made = cursor.fetchall()
            raced = sorted(set(new) - {subject for subject, _ in made})
            if raced:
                cursor.execute(f"SELECT subject, key FROM {_TABLE} WHERE subject = ANY(%s)", [raced])
                made += cursor.fetchall()
        for subject, key in made:
            self._rows.add(subject)
            self._keys[subject] = bytes(key) if key is not None else None

    def adopt(self, subject: str, key: bytes | None) -> None:
        """A key known without asking the database (a tenant being imported makes its own)."""
        self._keys[subject] = key
        self._rows.add(subject)

    def _cipher(self, subject: str) -> tuple[bytes | None, AESGCM | None]:
        key = self.key(subject)
        if key is None:
            return None, None
        aead = self._aead.get(subject)
        if aead is None:
            aead = self._aead[subject] = AESGCM(key)
        return key, aead

    # -- sealing ------------------------------------------------------------------------------
    def subject(
        self, kind: Kind, type_name: str, payload: Mapping[str, Any], aggregate_id: Any
    ) -> str | None:
        """The data subject of a payload to seal; None when it holds no personal data."""
        spec = _specs(self.registry, kind).get(type_name)
        return None if spec is None else personal.subject_of(spec, payload, aggregate_id)

    def seal_all(self, kind: Kind, items: Sequence[tuple[str, dict[str, Any], Any]]) -> list[dict[str, Any]]:
        """Each (type, payload, aggregate id) with its personal fields sealed (others as
        they are); keys are made for new subjects in one round trip."""
        subjects = [self.subject(kind, type_name, payload, agg) for type_name, payload, agg in items]
        self.ensure(s for s in subjects if s is not None)
        return [
            payload if subject is None else self._seal(kind, type_name, payload, subject)
            for (type_name, payload, _), subject in zip(items, subjects, strict=True)
        ]

    def seal(self, kind: Kind, type_name: str, payload: dict[str, Any], aggregate_id: Any) -> dict[str, Any]:
        return self.seal_all(kind, [(type_name, payload, aggregate_id)])[0]

    def _seal(self, kind: Kind, type_name: str, payload: dict[str, Any], subject: str) -> dict[str, Any]:
        spec = _specs(self.registry, kind)[type_name]
        key, aead = self._cipher(subject)
        sealed = dict(payload)
        for name in spec.fields:
            if name in sealed and not personal.is_sealed(sealed[name]):
                sealed[name] = personal.seal(key, subject, name, sealed[name], aead=aead)
        return sealed

    def for_hash(
        self, kind: Kind, type_name: str, payload: dict[str, Any], aggregate_id: Any
    ) -> dict[str, Any]:
        """The payload an idempotency hash covers: personal values by their fingerprint."""
        subject = self.subject(kind, type_name, payload, aggregate_id)
        if subject is None:
            return payload
        self.ensure([subject])
        key = self.key(subject)
        spec = _specs(self.registry, kind)[type_name]
        return {
            name: personal.fingerprint(key, subject, name, value) if name in spec.fields else value
            for name, value in payload.items()
        }

    # -- opening ------------------------------------------------------------------------------
    def prefetch(self, kind: Kind, items: Iterable[tuple[str, Any]]) -> Keyring:
        """Fetch, in one query, the keys every (type, stored payload) of a batch needs."""
        specs = _specs(self.registry, kind)
        self.load(
            subject
            for type_name, payload in items
            if type_name in specs and isinstance(payload, dict)
            for subject in personal.subjects_in(payload)
        )
        return self

    def reveal(self, kind: Kind, type_name: str, payload: Any) -> Any:
        """A stored payload with its sealed values opened (the placeholder once erased)."""
        if type_name not in _specs(self.registry, kind) or not isinstance(payload, dict):
            return payload
        opened = dict(payload)
        for name, value in payload.items():
            if personal.is_sealed(value):
                key, aead = self._cipher(str(value["subject"]))
                opened[name] = personal.open_sealed(key, value, name, aead=aead)
        return opened


class FreshKeys(Keyring):
    """The keys of a tenant being created from a file: nothing to look up, a key is made
    for each subject as it first appears (`made`, to be written with the tenant's rows),
    and the subjects the file says were erased get none."""

    def __init__(self, erased: Iterable[str] = (), registry: Registry | None = None) -> None:
        super().__init__(registry)
        self.erased = set(erased)
        self.made: list[tuple[str, bytes]] = []

    def load(self, subjects: Iterable[str]) -> None:
        for subject in set(subjects) - self._keys.keys():
            key = None if subject in self.erased else new_key()
            self.adopt(subject, key)
            if key is not None:
                self.made.append((subject, key))


def reveal_one(kind: Kind, type_name: str, payload: Any) -> Any:
    """One stored payload opened with its own keyring (the admin's pages, one object)."""
    return Keyring().reveal(kind, type_name, payload)


def new_key() -> bytes:
    return os.urandom(personal.KEY_BYTES)


@dataclass(frozen=True)
class Erasure:
    """What one erasure did: the subjects erased now, and those erased before."""

    erased: tuple[str, ...]
    already: tuple[str, ...]


class UnknownSubject(IntentError):
    code = "not_found"


def erase(subjects: Sequence[str], *, by: str) -> Erasure:
    """Delete the keys of `subjects` (in the caller's transaction), keeping the tombstones.

    Refuses, with nothing changed, a subject this tenant keeps no personal data for (a
    mistyped id must not pass for an erasure). The rows are locked first, so two erasures
    of one subject do not both count it as erased now.
    """
    wanted = sorted(set(subjects))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT subject, key IS NULL FROM {_TABLE} WHERE subject = ANY(%s) ORDER BY subject FOR UPDATE",
            [wanted],
        )
        found = dict(cursor.fetchall())
        unknown = [s for s in wanted if s not in found]
        if unknown:
            raise UnknownSubject(
                f"No personal data is kept for subject {unknown[0]} in this tenant.",
                details={"subjects": unknown},
            )
        live = [s for s in wanted if not found[s]]
        if live:
            cursor.execute(
                f"UPDATE {_TABLE} SET key = NULL, erased_at = now(), erased_by = %s WHERE subject = ANY(%s)",
                [by[:150], live],
            )
    return Erasure(erased=tuple(live), already=tuple(s for s in wanted if found[s]))


def vacuum_keys() -> None:
    """Reclaim the dead row versions that still hold erased keys (outside a transaction).

    An UPDATE leaves the old row version, key included, in the table's pages until VACUUM
    removes it; VACUUM can only do so once no open snapshot may still see it."""
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {_TABLE}")
