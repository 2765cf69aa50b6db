"""Dependencies between the apps run one way and are visible at the top of each module:
the write side never imports the read side (it announces work through
intent_project.wakeups), and no app imports another inside a function."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402

WRITE_SIDE = ("commands_app", "events_app")
READ_SIDE = "projections_app"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return import_graph.build_graph()


def _chain_to_the_read_side(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    chains = (graph.find_shortest_chain(side, READ_SIDE, as_packages=True) for side in WRITE_SIDE)
    return [chain for chain in chains if chain]


def test_the_write_side_never_imports_the_read_side_even_indirectly(graph):
    assert _chain_to_the_read_side(graph) == []


def test_an_indirect_import_of_the_read_side_is_caught(graph):
    # The shape of the cycle that used to hide behind function-level imports: the sweep
    # command of commands_app reaching projections_app through intent_project.
    graph = copy.deepcopy(graph)
    graph.add_import(importer="commands_app.bus", imported="intent_project.tasks")
    assert _chain_to_the_read_side(graph)


def test_no_app_imports_another_inside_a_function(graph):
    hidden = [
        f"{i.importer}:{i.line} -> {i.imported}"
        for i in import_graph.imports(graph)
        if i.between_apps and i.in_function
    ]
    assert hidden == []


def test_a_function_level_import_is_recognised(tmp_path: Path):
    module = tmp_path / "module.py"
    module.write_text(
        "from projections_app import registry\n\n\ndef later():\n    from projections_app import tasks\n"
        "\n\nfrom projections_app import sagas\n"
    )
    lines = import_graph.function_lines(module)
    # Inside the function, and only there: module-level imports before and after it are not.
    assert 5 in lines
    assert lines.isdisjoint({1, 8})
