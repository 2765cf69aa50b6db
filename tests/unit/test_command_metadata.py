"""A command row's metadata is one typed class (CommandMetadata), and the JSON rows already
in databases read back into it and are written again with the same keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from commands_app.domain.messages import CommandMetadata, SagaTrigger

COMMAND = uuid.UUID("00000000-0000-4000-8000-00000000000c")
FLOW = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
TRIGGER = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
NOW = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)

# As the bus and the saga consumer stored them before the class existed.
STORED_BY_THE_API = {
    "correlation_id": str(FLOW),
    "causation_id": None,
    "labels": {"ticket": "OPS-1"},
    "user_id": "7",
    "username": "dave",
    "role": "developer",
    "source": "api",
    "request_id": "req-1",
    "tenant": "acme",
    "received_at": "2026-01-02T03:04:05.123456+00:00",
}
STORED_BY_A_SAGA = {
    "user_id": None,
    "username": None,
    "role": "system",
    "source": "saga",
    "saga": "system_saga",
    "trigger": {"id": str(TRIGGER), "position": 12, "type": "multiEventEmitted"},
    "tenant": "acme",
    "correlation_id": str(FLOW),
    "causation_id": str(TRIGGER),
    "received_at": "2026-01-02T03:04:05.123456+00:00",
}


def _same_values(written: dict, stored: dict) -> None:
    for key, value in stored.items():
        if key == "received_at":
            assert datetime.fromisoformat(written[key].replace("Z", "+00:00")) == datetime.fromisoformat(
                value
            )
        else:
            assert written[key] == value, key


def test_rows_stored_by_the_api_and_by_sagas_read_back_and_keep_their_keys():
    for stored in (STORED_BY_THE_API, STORED_BY_A_SAGA):
        written = CommandMetadata.from_json(stored).to_json()
        _same_values(written, stored)
        # Keys only some commands have stay absent where they were.
        assert set(written) - set(stored) <= {"request_id"}


def test_a_saga_trigger_is_typed():
    metadata = CommandMetadata.from_json(STORED_BY_A_SAGA)
    assert metadata.trigger == SagaTrigger(id=TRIGGER, position=12, type="multiEventEmitted")
    assert metadata.causation_id == TRIGGER


def test_keys_it_does_not_know_are_kept():
    stored = {**STORED_BY_THE_API, "from_newer_code": {"x": 1}}
    assert CommandMetadata.from_json(stored).to_json()["from_newer_code"] == {"x": 1}


def test_an_empty_or_missing_document_reads_as_defaults():
    assert CommandMetadata.from_json(None) == CommandMetadata.from_json({}) == CommandMetadata()


def test_the_context_of_a_command_prefers_the_rows_correlation_and_starts_a_flow_without_one():
    metadata = CommandMetadata.from_json(STORED_BY_A_SAGA)
    ctx = metadata.context(COMMAND, None, NOW)
    assert (ctx.command_id, ctx.tenant, ctx.role, ctx.user_id) == (COMMAND, "acme", "system", None)
    assert (ctx.correlation_id, ctx.causation_id, ctx.now) == (FLOW, TRIGGER, NOW)
    other = uuid.uuid4()
    assert metadata.context(COMMAND, other, NOW).correlation_id == other
    assert CommandMetadata().context(COMMAND, None, NOW).correlation_id == COMMAND
