"""export_tenant / import_tenant: a tenant as one file and back, and files refused whole.

The round trip: a banking tenant (saga included) exported, imported under another slug and
exported again gives the same rows; the imported read models equal the source's. A file
that is damaged, reordered or names what the registry does not know creates nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models
from django_tenants.utils import schema_context

from commands_app import processing
from commands_app.models import Command
from intent_project.tenants.models import Tenant
from intent_project.tenants.portable import ImportRefused, import_tenant
from projections_app.models import AccountBalance, BankTotals, StatementLine, TransferStatus
from projections_app.runner import run_all
from tests.integration.helpers import submit

READ_MODELS = (AccountBalance, StatementLine, TransferStatus, BankTotals)


def _settle(tenant: Any) -> None:
    """Process every command and run every projection and saga, until nothing is left."""
    for _ in range(30):
        with schema_context(tenant.schema_name):
            waiting = list(
                Command.objects.filter(status="pending").order_by("created_at").values_list("pk", flat=True)
            )
            for command_id in waiting:
                processing.process(command_id)
            run_all()
            if not waiting and not Command.objects.filter(status__in=["pending", "consumed"]).exists():
                return
    raise AssertionError("the tenant never settled")


def _banking(tenant: Any) -> None:
    ann, ben = uuid.uuid4(), uuid.uuid4()
    for account, owner in ((ann, "Ann"), (ben, "Ben")):
        submit(
            tenant,
            "openAccount",
            {"accountId": str(account), "owner": owner, "currency": "EUR"},
            role="admin",
        )
    _settle(tenant)
    submit(tenant, "depositMoney", {"accountId": str(ann), "amount": 5000}, role="admin")
    _settle(tenant)
    for amount in (1250, 99999):  # one completes, one is declined (not enough money)
        transfer = {"transferId": str(uuid.uuid4()), "fromAccountId": str(ann), "toAccountId": str(ben)}
        submit(tenant, "transferMoney", {**transfer, "amount": amount}, role="admin")
    submit(tenant, "simulateFailure", {}, role="admin")
    _settle(tenant)


def _lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rb") as packed:
        return [json.loads(line) for line in packed]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [line for line in _lines(path) if line["kind"] not in ("header", "manifest")]


def _read_models(tenant: Any) -> dict[str, list[dict[str, Any]]]:
    """Every read model's rows, without the times a projection stamps when it writes."""
    seen: dict[str, list[dict[str, Any]]] = {}
    with schema_context(tenant.schema_name):
        for model in READ_MODELS:
            stamped = {f.attname for f in model._meta.concrete_fields if isinstance(f, models.DateTimeField)}
            columns = [f.attname for f in model._meta.concrete_fields if f.attname not in stamped | {"id"}]
            seen[model.__name__] = sorted(model.objects.values(*columns), key=repr)
    return seen


def _write(path: Path, lines: list[dict[str, Any]], *, fix_checksum: bool) -> Path:
    encoded = [json.dumps(line).encode() + b"\n" for line in lines]
    if fix_checksum:
        digest = hashlib.sha256(b"".join(encoded[:-1])).hexdigest()
        encoded[-1] = json.dumps({**lines[-1], "sha256": digest}).encode() + b"\n"
    with gzip.open(path, "wb") as packed:
        packed.writelines(encoded)
    return path


@pytest.fixture
def exported(fresh_tenant: Any, tmp_path: Path) -> tuple[Any, Path]:
    _banking(fresh_tenant)
    path = tmp_path / "source.jsonl.gz"
    call_command("export_tenant", fresh_tenant.slug, out=str(path))
    return fresh_tenant, path


def test_export_import_export_gives_the_same_rows_and_the_same_read_models(exported, tmp_path, live_db):
    source, first = exported
    copy_slug = "c" + uuid.uuid4().hex[:12]

    call_command("import_tenant", str(first), slug=copy_slug)
    copy = Tenant.objects.get(slug=copy_slug)
    second = tmp_path / "copy.jsonl.gz"
    call_command("export_tenant", copy_slug, out=str(second))

    rows = _rows(first)
    counts = {kind: sum(1 for r in rows if r["kind"] == kind) for kind in ("event", "command", "saga")}
    assert counts == {"event": 10, "command": 11, "saga": 2}, counts
    assert _rows(second) == rows
    header, again = _lines(first)[0], _lines(second)[0]
    assert (header["tenant"]["slug"], again["tenant"]["slug"]) == (source.slug, copy_slug)
    assert _read_models(copy) == _read_models(source)
    assert _read_models(copy)["AccountBalance"], "the imported read models are empty"
    with schema_context(copy.schema_name):  # the copy goes on where the source stopped
        assert Command.objects.filter(status="failed").count() == 1
    submit(copy, "logMessage", {"message": "after the import"}, role="admin")
    _settle(copy)


def _refused(path: Path, reason: str) -> None:
    slug = "r" + uuid.uuid4().hex[:12]
    with pytest.raises(ImportRefused, match=reason):
        import_tenant(path, slug)
    assert not Tenant.objects.filter(slug=slug).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [f"t_{slug}"])
        assert cursor.fetchone() is None, "a refused import left a schema"


def test_a_changed_byte_fails_the_checksum_and_creates_nothing(exported, tmp_path):
    lines = _lines(exported[1])
    event = next(line for line in lines if line["kind"] == "event")
    event["row"]["payload"]["owner"] = "Mallory"

    _refused(_write(tmp_path / "changed.gz", lines, fix_checksum=False), "checksum")


def test_events_out_of_order_are_refused(exported, tmp_path):
    lines = _lines(exported[1])
    events = [i for i, line in enumerate(lines) if line["kind"] == "event"]
    lines[events[0]], lines[events[1]] = lines[events[1]], lines[events[0]]

    _refused(_write(tmp_path / "reordered.gz", lines, fix_checksum=True), "out of order")


@pytest.mark.parametrize(
    ("change", "reason"), [("type", "not in the registry"), ("schema_version", "schema version")]
)
def test_an_event_the_registry_does_not_know_is_refused(exported, tmp_path, change, reason):
    lines = _lines(exported[1])
    event = next(line for line in lines if line["kind"] == "event")
    event["row"][change] = "accountTeleported" if change == "type" else 99

    _refused(_write(tmp_path / "unknown.gz", lines, fix_checksum=True), reason)


def test_a_cut_file_and_a_taken_slug_are_refused_by_the_command_with_nothing_created(exported, tmp_path):
    source, path = exported
    lines = _lines(path)[:-3]
    cut = _write(tmp_path / "cut.gz", [*lines, {"kind": "manifest"}], fix_checksum=False)
    with pytest.raises(CommandError, match="Nothing was created"):
        call_command("import_tenant", str(cut), slug="z" + uuid.uuid4().hex[:12])
    with pytest.raises(CommandError, match="exists already"):
        call_command("import_tenant", str(path), slug=source.slug)
    with pytest.raises(CommandError, match="No tenant"):
        call_command("export_tenant", "nobody-here", out=str(tmp_path / "x.gz"))


def test_a_superuser_downloads_the_export_over_the_api_and_others_are_refused(exported, world, tmp_path):
    from rest_framework.test import APIClient

    source, _ = exported
    url = f"/api/tenants/{source.slug}/export/"
    root = APIClient()
    root.credentials(HTTP_AUTHORIZATION=f"Bearer {world['root'].token}")

    answer = root.get(url, HTTP_ACCEPT="application/json")

    assert answer.status_code == 200 and answer["Content-Type"] == "application/octet-stream"
    downloaded = tmp_path / "downloaded.gz"
    downloaded.write_bytes(b"".join(answer.streaming_content))
    assert _rows(downloaded) == _rows(exported[1])
    assert root.get("/api/tenants/no-such-tenant/export/").status_code == 404
    for persona in ("ada", "opal", "stan"):  # a tenant admin, a platform operator, plain staff
        refused = world[persona].client().get(url)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "superuser_only"), persona
    assert APIClient().get(url).status_code == 401


def test_a_superuser_downloads_the_export_from_the_platform_admin_and_others_are_refused(
    exported, world, tmp_path
):
    from django.test import Client

    source, _ = exported
    page, url = f"/admin/tenants/tenant/{source.pk}/change/", f"/admin/tenants/tenant/{source.pk}/export/"

    def browser(persona: str) -> Client:
        client = Client(raise_request_exception=False)
        client.force_login(world[persona].user)
        return client

    root = browser("root")
    assert url.encode() in root.get(page).content  # the page's Export button
    answer = root.get(url)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/octet-stream"
    assert f'filename="{source.slug}.intent.jsonl.gz"' in answer["Content-Disposition"]
    downloaded = tmp_path / "from-admin.gz"
    downloaded.write_bytes(b"".join(answer.streaming_content))
    assert _rows(downloaded) == _rows(exported[1])
    for persona in ("opal", "ada", "stan"):  # a platform operator, a tenant admin, plain staff
        client = browser(persona)
        refused = client.get(url)
        assert (
            refused.status_code in (302, 403) and refused.get("Content-Type") != "application/octet-stream"
        ), persona
        assert url.encode() not in client.get(page).content, persona
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
