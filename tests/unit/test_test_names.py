"""Every test in tests/ has a name of its own.

ruff's F811 catches a test redefined in the same scope (the second silently replaces the
first), but not the same name in two modules or two classes: there both run, yet `-k`,
failure reports and a reader cannot tell them apart, and one was often a copy of the other
(tests/integration had two `test_an_unusable_snapshot_is_ignored_and_the_stream_replayed`).
A test method of a shared suite (tests/contract_event_store.py) is one definition, however
many classes run it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _tests_in(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found.append((node.name, node.lineno))
    return found


def duplicate_test_names(root: Path) -> dict[str, list[str]]:
    """Test function names defined more than once under `root`, with where."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        for name, line in _tests_in(ast.parse(path.read_text(), filename=str(path))):
            where[name].append(f"{path.relative_to(root)}:{line}")
    return {name: places for name, places in where.items() if len(places) > 1}


def test_no_two_tests_share_a_name():
    assert duplicate_test_names(TESTS) == {}


def test_the_check_finds_a_name_used_twice(tmp_path):
    (tmp_path / "test_a.py").write_text("def test_it_works():\n    pass\n")
    (tmp_path / "test_b.py").write_text("class TestB:\n    def test_it_works(self):\n        pass\n")

    assert duplicate_test_names(tmp_path) == {"test_it_works": ["test_a.py:1", "test_b.py:2"]}
