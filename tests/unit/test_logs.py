"""The one log configuration: JSON lines carry the bound context; nothing leaks between requests."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import structlog

from intent_project import logs


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_plain_stdlib_line_is_one_json_object_with_the_bound_context(json_lines: io.StringIO) -> None:
    with logs.bind(request_id="r-1", tenant="t_acme", command_id="c-1", causation_id=None):
        logging.getLogger("commands_app.processing").info("command %s processed", "c-1")
    (line,) = _lines(json_lines)
    assert line["event"] == "command c-1 processed"
    assert line["level"] == "info"
    assert line["logger"] == "commands_app.processing"
    assert line["request_id"] == "r-1" and line["tenant"] == "t_acme" and line["command_id"] == "c-1"
    assert "causation_id" not in line  # None values are left out, not logged as null
    assert "timestamp" in line


def test_extra_fields_and_exceptions_are_structured(json_lines: io.StringIO) -> None:
    log = logging.getLogger("projections_app.runner")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("batch failed", extra={"projection": "account_balance", "position": 42})
    (line,) = _lines(json_lines)
    assert line["projection"] == "account_balance" and line["position"] == 42
    assert line["exception"][0]["exc_type"] == "ValueError"  # type: ignore[index]


def test_context_ends_with_its_block(json_lines: io.StringIO) -> None:
    with logs.bind(user="ada"):
        logging.getLogger("x").info("inside")
    logging.getLogger("x").info("outside")
    inside, outside = _lines(json_lines)
    assert inside["user"] == "ada"
    assert "user" not in outside


def test_the_console_format_is_readable_text() -> None:
    config = logs.logging_config("console", "INFO", colors=False)
    assert config["formatters"]["structured"]["()"] is structlog.stdlib.ProcessorFormatter
    assert isinstance(config["formatters"]["structured"]["processors"][-1], structlog.dev.ConsoleRenderer)


def test_a_database_gone_before_the_view_does_not_break_the_log_context() -> None:
    """Loading the session's user is a query: when it fails, the view meets the same error
    and answers 503; the log middleware must let the request reach it."""
    from django.db import OperationalError
    from django.http import HttpRequest
    from django.utils.functional import SimpleLazyObject

    def unreachable() -> object:
        raise OperationalError("connection refused")

    request = HttpRequest()
    request.user = SimpleLazyObject(unreachable)  # type: ignore[assignment]
    middleware = logs.LogContextMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    assert middleware.process_view(request) is None


def test_a_tenant_task_s_lines_carry_its_tenant() -> None:
    from intent_project.celery import _bind_task, _unbind_task

    class Task:
        name = "commands_app.tasks.drain_commands"

    _bind_task(task_id="t-1", task=Task(), args=("t_acme",))
    bound = structlog.contextvars.get_contextvars()
    _unbind_task()
    assert (bound["task"], bound["task_id"], bound["tenant"]) == (Task.name, "t-1", "t_acme")

    _bind_task(task_id="t-2", task=Task(), args=())  # the sweep: every tenant, none bound
    assert "tenant" not in structlog.contextvars.get_contextvars()
    _unbind_task()
