"""The command bus: validate, authorize, store once, wake a worker after commit."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from commands_app import read_policy
from commands_app.domain.errors import IdempotencyConflict, IntentError, InvalidPayload
from commands_app.domain.messages import CommandMetadata, DomainCommand
from commands_app.models import Command, CommandStatus
from commands_app.registry import get_registry
from commands_app.tasks import enqueue
from events_app.personal import Keyring
from intent_project import announcements, lifecycle, tracing
from intent_project.rowsets import Columns
from intent_project.tenancy import current_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    command: Command
    created: bool


def body_hash(
    type_name: str, payload: Any, client_metadata: dict[str, Any], not_before: datetime | None = None
) -> str:
    canonical = json.dumps(
        {
            "type": type_name,
            "payload": payload,
            "metadata": client_metadata,
            "not_before": not_before.isoformat() if not_before else None,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    *,
    schema_name: str,
    tenant: str,
    type_name: str,
    payload: Any,
    role: str | None,
    user_id: str | None,
    username: str | None = None,
    command_id: UUID | None = None,
    client_metadata: dict[str, Any] | None = None,
    source: str = "api",
    request_id: str | None = None,
    not_before: datetime | None = None,
) -> Submission:
    """Store a command (status pending) or return the one already stored under its id.

    Raises UnknownCommandType, Forbidden, InvalidPayload or IdempotencyConflict; nothing is
    written when it raises.
    """
    client_metadata = client_metadata or {}
    reader = read_policy.Reader(role=role, user_id=user_id)
    command_id = command_id or uuid.uuid4()
    with tracing.span(f"store {type_name}", attributes={"intent.source": source}):
        command = _admit(reader, type_name, payload, client_metadata)
        metadata = CommandMetadata(
            tenant=tenant,
            source=source,
            user_id=user_id,
            username=username,
            role=role,
            request_id=request_id,
            correlation_id=client_metadata.get("correlation_id") or command_id,
            causation_id=client_metadata.get("causation_id"),
            labels=client_metadata.get("labels") or {},
            trace=tracing.carrier(),
        )
        row = new_command_row(
            command,
            command_id=command_id,
            metadata=metadata,
            client_metadata=client_metadata,
            not_before=not_before,
        )
        digest = row.body_hash
        try:
            # The primary key is what makes "same id twice" impossible: a re-sent id fails the
            # INSERT (one round trip, like the lookup it replaces) and we answer with the stored
            # command. Outside a transaction the INSERT commits by itself; inside one, a savepoint
            # lets it fail alone.
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                insert_commands([row])
        except IntegrityError:
            existing = Command.objects.filter(pk=command_id).first()
            if existing is None:
                raise  # not the id after all
            replayed = _replay(reader, existing, digest)
            lifecycle.command_replayed(replayed)
            return Submission(replayed, created=False)
        tracing.annotate(command_id=row.id, correlation_id=row.correlation_id)
        # Logged once it is true: a saga's or a caller's transaction may still roll back.
        transaction.on_commit(functools.partial(lifecycle.command_stored, row, source=source))
        enqueue_on_commit(schema_name, row.id, not_before)
        return Submission(row, created=True)


def _admit(
    reader: read_policy.Reader, type_name: str, payload: Any, client_metadata: dict[str, Any]
) -> DomainCommand:
    """The command, parsed, if this sender may send it as it is; raises otherwise."""
    registry = get_registry()
    # Authorize before anything else, the idempotent replay included: re-posting someone
    # else's id and body must not hand a role a command type it may not send.
    registry.authorize(reader.role, type_name)
    # A client may join only a flow it may see: otherwise any member could graft commands
    # into another user's flow (and learn from the answer whether that flow exists).
    read_policy.check_flow_references(
        reader, client_metadata.get("correlation_id"), client_metadata.get("causation_id")
    )
    size = len(json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8", "replace"))
    if size > settings.COMMAND_PAYLOAD_MAX_BYTES:
        raise InvalidPayload(
            f"The payload is {size} bytes; the limit is {settings.COMMAND_PAYLOAD_MAX_BYTES}.",
            code="payload_too_large",
            details={"size": size, "limit": settings.COMMAND_PAYLOAD_MAX_BYTES},
        )
    return registry.parse_command(type_name, payload)


def _replay(reader: read_policy.Reader, existing: Command, digest: str) -> Command:
    """The command already stored under the id, when it is the caller's and the body is
    the same; raises IdempotencyConflict otherwise."""
    if not Command.objects.filter(read_policy.visible_commands(reader), pk=existing.pk).exists():
        # Someone else's command under this id: neither its body nor its state is ours to
        # hand back, whatever the body we were sent.
        raise IdempotencyConflict(f"Command {existing.pk} already exists.", details={"id": str(existing.pk)})
    return _same_body_or_conflict(existing, digest)


def new_command_row(
    command: DomainCommand,
    *,
    command_id: UUID,
    metadata: CommandMetadata,
    client_metadata: dict[str, Any],
    not_before: datetime | None,
) -> Command:
    """An unsaved pending command row; the one place its columns are laid out.

    Its personal data is sealed (events_app/personal.py; a subject erased refuses new
    personal data with SubjectErased) and its body hash covers the normalised payload, so
    `testId` and `test_id` are the same body, with personal values by their keyed
    fingerprint instead of in clear."""
    now = timezone.now()
    metadata = metadata.model_copy(
        update={"correlation_id": metadata.correlation_id or command_id, "received_at": now}
    )
    aggregate_id = command.aggregate_id(metadata.context(command_id, None, now))
    wire = command.to_wire()
    keys = Keyring()
    hashed = keys.for_hash("command", command.TYPE, wire, aggregate_id)
    return Command(
        id=command_id,
        type=command.TYPE,
        payload=keys.seal("command", command.TYPE, wire, aggregate_id),
        metadata=metadata.to_json(),
        body_hash=body_hash(command.TYPE, hashed, client_metadata, not_before),
        aggregate_type=command.AGGREGATE_TYPE,
        aggregate_id=aggregate_id,
        correlation_id=metadata.correlation_id,
        causation_id=metadata.causation_id,
        not_before=not_before,
    )


_STORED = Columns.all_of(Command)


def insert_commands(rows: Sequence[Command], *, ignore_conflicts: bool = False) -> None:
    """Insert new command rows in one statement, and mark the tenant for the sweep (a
    pending command is work it watches: intent_project/sweep_marks.py) in the same round
    trip; outside a transaction the two still commit together (one multi-statement
    string is one implicit transaction). `ignore_conflicts`: ON CONFLICT DO NOTHING."""
    sql, params = _STORED.insert(rows, ignore_conflicts=ignore_conflicts)
    with connection.cursor() as cursor:
        cursor.execute(*announcements.followed(sql, params, current_schema(), mark=True))
    for row in rows:  # saved, as the ORM would record it
        row._state.adding = False
        row._state.db = connection.alias


def enqueue_on_commit(schema_name: str, command_id: UUID, not_before: datetime | None) -> None:
    """After commit, wake a worker for the command (commands_app.tasks.enqueue decides how)."""
    delay = (not_before - timezone.now()).total_seconds() if not_before else None
    transaction.on_commit(functools.partial(enqueue, schema_name, command_id, delay))


def _same_body_or_conflict(existing: Command, digest: str) -> Command:
    if existing.body_hash != digest:
        raise IdempotencyConflict(
            f"Command {existing.id} already exists with a different body.",
            details={"id": str(existing.id), "existing_type": existing.type},
        )
    return existing


def retry(command_id: UUID, *, role: str | None, operator: str = "") -> Command:
    """Send a failed command again. Safe: a failed command appended nothing.

    The caller must be allowed to send the command's type; the previous error is kept in
    the metadata so the history stays visible.
    """
    with transaction.atomic():
        row = Command.objects.select_for_update().filter(pk=command_id).first()
        if row is None:
            raise IntentError(f"No command {command_id} in this tenant.", code="not_found")
        get_registry().authorize(role, row.type)
        if row.status != CommandStatus.FAILED:
            raise IntentError(
                f"Only failed commands can be retried; this one is {row.status}.",
                code="not_retryable",
                details={"status": row.status},
            )
        metadata = CommandMetadata.from_json(row.metadata)
        retried = {
            "error": row.error,
            "attempts": row.attempts,
            "retried_by": operator,
            "retried_at": timezone.now().isoformat(),
        }
        history = (*metadata.previous_errors, retried)[-10:]
        row.metadata = metadata.model_copy(update={"previous_errors": history}).to_json()
        row.status = CommandStatus.PENDING
        row.error = None
        row.attempts = 0
        row.not_before = None
        row.processed_at = None
        row.save(
            update_fields=[
                "metadata",
                "status",
                "error",
                "attempts",
                "not_before",
                "processed_at",
                "updated_at",
            ]
        )
        transaction.on_commit(functools.partial(enqueue, current_schema(), row.id))
    return row
