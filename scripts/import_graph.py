"""Print the import graph between the four apps: `python scripts/import_graph.py [-v]`.

Reads the source with grimp (import-linter's graph library), so nothing is imported or
configured. Each edge "A -> B" counts the imports of a module of B by a module of A,
module-level and function-level apart: a function-level import between apps hides a
dependency (and often a cycle) from a reader of the module's head, so there should be
none. `-v` lists every import between apps with its line; `--within` the function-level
imports inside an app (each should say which cycle or load order forces it). The rules
are import-linter contracts in pyproject.toml (`lint-imports`, part of `make lint`), and
tests/unit/test_import_graph.py holds both.
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
APPS = ("intent_project", "commands_app", "events_app", "projections_app")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool

    @property
    def edge(self) -> tuple[str, str]:
        return self.importer.split(".")[0], self.imported.split(".")[0]

    @property
    def between_apps(self) -> bool:
        return self.edge[0] != self.edge[1]


def build_graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(ROOT))
    return grimp.build_graph(*APPS, cache_dir=None)


@functools.cache
def function_lines(path: Path) -> frozenset[int]:
    """Line numbers inside a function body of the module at `path` (imports there run
    when the function is called, not when the module is imported)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return frozenset(lines)


def _path(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports(graph: grimp.ImportGraph) -> list[Import]:
    """Every import between modules of the four apps, sorted."""
    found: list[Import] = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                line = int(detail["line_number"])
                found.append(Import(importer, imported, line, line in function_lines(_path(importer))))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list every import between apps")
    parser.add_argument("--within", action="store_true", help="list function-level imports inside an app")
    options = parser.parse_args()
    found = imports(build_graph())
    between = [i for i in found if i.between_apps]
    module_level = Counter(i.edge for i in between if not i.in_function)
    function_level = Counter(i.edge for i in between if i.in_function)
    print(f"{'importer':<16} -> {'imported':<16} {'module-level':>12} {'function-level':>14}")
    for edge in sorted(set(module_level) | set(function_level)):
        print(f"{edge[0]:<16} -> {edge[1]:<16} {module_level[edge]:>12} {function_level[edge]:>14}")
    for imp in found:
        if (imp.between_apps and (options.verbose or imp.in_function)) or (
            options.within and not imp.between_apps and imp.in_function
        ):
            where = "function-level" if imp.in_function else "module-level"
            print(f"  {imp.importer}:{imp.line} -> {imp.imported} ({where})")


if __name__ == "__main__":
    main()
