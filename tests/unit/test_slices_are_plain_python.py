"""Slice and kernel code imports no framework, so it tests in milliseconds without a database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("django", "rest_framework", "celery", "django_tenants", "kombu", "redis", "psycopg")
PLAIN = sorted(
    [
        *ROOT.joinpath("commands_app", "slices").rglob("*.py"),
        *ROOT.joinpath("commands_app", "domain").rglob("*.py"),
    ]
)


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: str(p.relative_to(ROOT)))
def test_it_imports_no_framework(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    offending = [name for name in imported if name.split(".")[0] in FRAMEWORKS]
    assert offending == []


def test_every_slice_has_the_same_files() -> None:
    expected = {
        "__init__.py",
        "payloads.py",
        "aggregate.py",
        "handlers.py",
        "access.py",
        "sagas.py",
        "upcasters.py",
    }
    slices = [
        p
        for p in ROOT.joinpath("commands_app", "slices").iterdir()
        if p.is_dir() and not p.name.startswith("_")
    ]
    assert slices
    for slice_dir in slices:
        assert {p.name for p in slice_dir.glob("*.py")} >= expected, slice_dir.name
