"""Each transition is one log line with its ids, and is counted in the metrics."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from intent_project import lifecycle, metrics


@dataclass
class Row:
    type: str = "depositMoney"
    status: str = "pending"
    attempts: int = 1
    error: Any = None
    result: Any = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    correlation_id: uuid.UUID | None = field(default_factory=uuid.uuid4)
    causation_id: uuid.UUID | None = None
    created_at: datetime | None = field(default_factory=lambda: timezone.now() - timedelta(seconds=2))
    not_before: datetime | None = None


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _count(metric: Any, *labels: str) -> float:
    child = metric.labels(*labels) if labels else metric
    return float(child._value.get())


def test_a_batch_logs_each_command_s_transition_once_with_its_ids(json_lines: io.StringIO) -> None:
    consumed = Row(
        status="consumed",
        result={"events": [{"id": "e1", "type": "moneyDeposited"}, {"id": "e2", "type": "moneyDeposited"}]},
    )
    processed = Row(
        type="openAccount", status="processed", result={"events": [{"id": "e3", "type": "accountOpened"}]}
    )
    failed = Row(status="failed", error={"code": "insufficient_funds", "message": "Balance 0."}, attempts=1)
    retried = Row(error={"code": "infrastructure_error", "message": "down", "retrying": True}, attempts=2)
    postponed = Row(not_before=timezone.now() + timedelta(minutes=5))
    failed_before = _count(metrics.COMMANDS_FINAL, "depositMoney", "failed")
    retries_before = _count(metrics.COMMAND_RETRIES, "retry")
    deposited_before = _count(metrics.EVENTS_APPENDED, "moneyDeposited")

    lifecycle.commands_handled([consumed, processed, failed, retried, postponed], seconds=0.01)

    lines = _lines(json_lines)
    assert [line["event"] for line in lines] == [
        "command.consumed",
        "command.processed",
        "command.failed",
        "command.retried",
        "command.postponed",
    ]
    assert lines[0]["command_id"] == str(consumed.id) and lines[0]["events"] == 2
    assert lines[0]["correlation_id"] == str(consumed.correlation_id)
    assert "causation_id" not in lines[0]  # unknown ids are left out, not null
    assert lines[2]["error_code"] == "insufficient_funds" and lines[2]["level"] == "warning"
    assert lines[3]["error_code"] == "infrastructure_error" and lines[3]["attempts"] == 2
    assert lines[4]["not_before"] == postponed.not_before.isoformat()  # type: ignore[union-attr]
    assert _count(metrics.COMMANDS_FINAL, "depositMoney", "failed") == failed_before + 1
    assert _count(metrics.COMMAND_RETRIES, "retry") == retries_before + 1
    assert _count(metrics.EVENTS_APPENDED, "moneyDeposited") == deposited_before + 2


def test_storing_settling_and_projection_batches_are_counted(json_lines: io.StringIO) -> None:
    row = Row(type="closeAccount")
    stored_before = _count(metrics.COMMANDS_STORED, "closeAccount")
    processed_before = _count(metrics.COMMANDS_FINAL, "closeAccount", "processed")
    applied_before = _count(metrics.PROJECTION_EVENTS, "account_balances")

    lifecycle.command_stored(row, source="api")
    lifecycle.commands_settled([row])
    lifecycle.projection_batch("account_balances", events=7, position=42, seconds=0.003)

    stored, settled, batch = _lines(json_lines)
    assert (stored["event"], stored["source"]) == ("command.stored", "api")
    assert settled["event"] == "command.processed" and settled["command_id"] == str(row.id)
    assert (batch["projection"], batch["position"], batch["events"]) == ("account_balances", 42, 7)
    assert _count(metrics.COMMANDS_STORED, "closeAccount") == stored_before + 1
    assert _count(metrics.COMMANDS_FINAL, "closeAccount", "processed") == processed_before + 1
    assert _count(metrics.PROJECTION_EVENTS, "account_balances") == applied_before + 7


def test_an_operator_action_says_who_did_what_to_which(json_lines: io.StringIO) -> None:
    lifecycle.operator_action("skip", operator="ada", target="account_balances", position=17)
    (line,) = _lines(json_lines)
    assert line["event"] == "operator.skip"
    assert (line["operator"], line["target"], line["position"]) == ("ada", "account_balances", 17)


def test_a_stalled_projection_is_an_error_line(json_lines: io.StringIO) -> None:
    error = {"code": "projection_error", "message": "KeyError: 'x'"}
    lifecycle.projection_failed("transfers", position=9, error=error, stalled=True)
    (line,) = _lines(json_lines)
    assert (line["event"], line["level"], line["error_code"]) == (
        "projection.stalled",
        "error",
        "projection_error",
    )
