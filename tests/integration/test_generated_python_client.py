"""A client developer's view: a Python client generated from the served OpenAPI document
(openapi-python-client) drives a whole flow against the app and a real worker, and every
answer, errors included, arrives as a typed object."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from django.test import Client as DjangoClient

from intent_project.wsgi import application

pytestmark = pytest.mark.worker

PACKAGE = "intent_generated_client"


@pytest.fixture(scope="module")
def worker(celery_worker):
    return celery_worker


@pytest.fixture(scope="module")
def generated(world, django_db_blocker, tmp_path_factory) -> Iterator[ModuleType]:
    """The client package, generated without a warning from GET /api/schema/."""
    where = tmp_path_factory.mktemp("client")
    with django_db_blocker.unblock():
        served = DjangoClient().get("/api/schema/?format=json")
    assert served.status_code == 200
    (where / "openapi.json").write_bytes(served.content)
    (where / "config.yaml").write_text("post_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--config", "config.yaml"]
        + ["--meta", "none", "--output-path", PACKAGE],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _in_process() -> dict[str, Any]:
    return {"transport": httpx.WSGITransport(app=application)}


def _module(path: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{path}")


def test_a_generated_client_drives_a_whole_flow_with_typed_answers(generated, worker, live_db, world):
    api = generated
    models = _module("models")
    create_token = _module("api.auth.create_token")
    submit_command = _module("api.commands.submit_command")
    get_row = _module("api.read_models.get_account_balances_row")
    list_rows = _module("api.read_models.list_account_balances_rows")
    get_trace = _module("api.traces.get_trace")

    # A token, then `Authorization: Bearer <token>` (the generated client's default).
    anonymous = api.Client(base_url="http://testserver", httpx_args=_in_process())
    token = create_token.sync(
        client=anonymous, body=models.TokenInRequest(username="bea", password=world["bea"].password)
    )
    assert isinstance(token, models.Token)
    bea = api.AuthenticatedClient(base_url="http://testserver", token=token.token, httpx_args=_in_process())

    # Three accounts of one owner, each submitted and answered in one request (?wait).
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    accounts, commands = [], []
    for _ in range(3):
        command = models.OpenAccountCommand(
            type_="openAccount",
            id=uuid.uuid4(),
            payload=models.OpenAccountPayload(account_id=uuid.uuid4(), owner=owner, currency="EUR"),
        )
        answer = submit_command.sync_detailed("acme", client=bea, body=command, wait=20)
        assert answer.status_code == 202
        assert isinstance(answer.parsed, models.Command)
        assert answer.parsed.status == models.CommandStatusEnum.PROCESSED
        accounts.append(command.payload.account_id)
        commands.append((command, answer.parsed))

    # The same command again: stored before, said so by a header.
    command, stored = commands[0]
    replay = submit_command.sync_detailed("acme", client=bea, body=command, wait=20)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert isinstance(replay.parsed, models.Command) and replay.parsed.id == stored.id

    # The same id with another body: a 409, parsed as the Error type.
    other = models.OpenAccountCommand(
        type_="openAccount",
        id=command.id,
        payload=models.OpenAccountPayload(account_id=uuid.uuid4(), owner=owner, currency="USD"),
    )
    conflict = submit_command.sync_detailed("acme", client=bea, body=other)
    assert conflict.status_code == 409
    assert isinstance(conflict.parsed, models.Error)
    assert conflict.parsed.error.code == models.ErrorCode.IDEMPOTENCY_CONFLICT

    # A payload its type refuses: a 400, parsed as the Error type.
    bad = models.OpenAccountCommand(
        type_="openAccount",
        payload=models.OpenAccountPayload(account_id=uuid.uuid4(), owner=owner, currency="euros"),
    )
    refused = submit_command.sync_detailed("acme", client=bea, body=bad)
    assert refused.status_code == 400
    assert isinstance(refused.parsed, models.Error)
    assert refused.parsed.error.code == models.ErrorCode.INVALID_PAYLOAD
    assert refused.parsed.error.request_id == refused.headers["X-Request-ID"]

    # A row of the read model, as its own type, once the projection has the last write.
    last = max(event.position for _, done in commands for event in done.result.events)
    row = get_row.sync("acme", key=accounts[0], client=bea, min_position=last)
    assert isinstance(row, models.AccountBalance)
    assert (row.owner, row.currency, row.balance, row.status) == (
        owner,
        "EUR",
        0,
        models.AccountStatusEnum.OPEN,
    )

    # Two pages with a filter: the cursor of the first page is all the second one needs.
    first = list_rows.sync("acme", client=bea, owner=owner, limit=2, min_position=last)
    assert isinstance(first, models.PaginatedAccountBalanceList)
    assert len(first.results) == 2 and isinstance(first.next_cursor, str)
    second = list_rows.sync("acme", client=bea, owner=owner, limit=2, cursor=first.next_cursor)
    assert isinstance(second, models.PaginatedAccountBalanceList)
    assert len(second.results) == 1 and second.next_cursor is None
    assert sorted(r.account_id for r in first.results + second.results) == sorted(accounts)

    # The flow of the first command: the command, and under it the event it recorded.
    flow = get_trace.sync("acme", correlation_id=stored.correlation_id, client=bea)
    assert isinstance(flow, models.Trace)
    (root,) = flow.roots
    assert (root.kind, root.type_, root.id) == (models.TraceNodeKindEnum.COMMAND, "openAccount", stored.id)
    assert [(child.kind, child.type_) for child in root.children] == [
        (models.TraceNodeKindEnum.EVENT, "accountOpened")
    ]
