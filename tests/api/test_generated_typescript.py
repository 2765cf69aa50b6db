"""A client developer's view from TypeScript: types generated from the served OpenAPI
document (openapi-typescript) type the README's examples, and a payload of the wrong shape
for its `type` does not compile (tsc --noEmit)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.helpers import client_for

ROOT = Path(__file__).resolve().parents[2]
# Installed once per checkout, beside the embedded services (git-ignored, like them).
TOOLS = ROOT / ".var" / "node-tools"
PACKAGES = ("openapi-typescript@7.13.0", "typescript@5.9.3")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed (apt-get install nodejs npm)",
)


def _tools() -> Path:
    stamp = TOOLS / (" ".join(PACKAGES).replace("/", "_") + ".installed")
    if not stamp.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), *PACKAGES],
            check=True,
            capture_output=True,
            timeout=600,
        )
        stamp.touch()
    return TOOLS / "node_modules" / ".bin"


def _readme_examples() -> dict[str, object]:
    """The command bodies the README posts (`-d '{...}'`) and its error body."""
    readme = (ROOT / "README.md").read_text()
    found: dict[str, object] = {}
    for body in re.findall(r"-d '(\{.*?\})'", readme):
        posted = json.loads(body)
        if "type" in posted:  # a command, not the login
            found[posted["type"]] = posted
    (error,) = re.findall(r"```json\n(\{\"error\".*?)```", readme, flags=re.DOTALL)
    found["error"] = json.loads(error)
    return found


@pytest.fixture(scope="module")
def typed(tmp_path_factory) -> Path:
    """A directory for the generated types, with openapi-typescript and tsc installed."""
    where = tmp_path_factory.mktemp("typescript")
    _tools()
    return where


def _compile(where: Path, source: str) -> subprocess.CompletedProcess[str]:
    (where / "check.ts").write_text(source)
    return subprocess.run(
        [str(TOOLS / "node_modules" / ".bin" / "tsc"), "--noEmit", "--strict", "check.ts"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _generate(where: Path) -> None:
    served = client_for().get("/api/schema/?format=json")
    assert served.status_code == 200
    (where / "openapi.json").write_bytes(served.content)
    run = subprocess.run(
        [str(TOOLS / "node_modules" / ".bin" / "openapi-typescript"), "openapi.json", "-o", "api.d.ts"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


HEADER = """import type { components, operations } from "./api";
type Schemas = components["schemas"];
"""


def test_the_readme_examples_compile_as_the_generated_types(typed, world):
    _generate(typed)
    examples = _readme_examples()
    assert {"executeTest", "openAccount", "transferMoney", "error"} <= set(examples)
    lines = [HEADER]
    for name, body in examples.items():
        if name == "error":
            lines.append(f"export const error: Schemas['Error'] = {json.dumps(body)};")
            lines.append(
                "export const conflict: operations['submitCommand']['responses'][409]"
                "['content']['application/json'] = error;"
            )
        else:
            lines.append(f"export const {name}: Schemas['CommandSubmission'] = {json.dumps(body)};")
    # What a client reads: a page's cursor on its own, a typed row, a command's result.
    lines.append(
        "export function next(page: Schemas['PaginatedAccountBalanceList']): string | null {\n"
        "  const balance: number = page.results[0].balance;\n"
        "  return balance >= 0 ? page.next_cursor : null;\n"
        "}\n"
        "export function positions(command: Schemas['Command']): number[] {\n"
        "  return command.result ? command.result.events.map((e) => e.position) : [];\n"
        "}"
    )
    run = _compile(typed, "\n".join(lines))

    assert run.returncode == 0, run.stdout + run.stderr


def test_a_payload_of_another_type_does_not_compile(typed, world):
    _generate(typed)
    wrong = (
        HEADER + "export const transfer: Schemas['CommandSubmission'] = {type: 'transferMoney', "
        "payload: {accountId: 'a', owner: 'Ada', currency: 'EUR'}};"
    )
    right = (
        HEADER + "export const transfer: Schemas['CommandSubmission'] = {type: 'openAccount', "
        "payload: {accountId: 'a', owner: 'Ada', currency: 'EUR'}};"
    )

    refused = _compile(typed, wrong)
    assert refused.returncode != 0
    assert "transferId" in refused.stdout  # tsc names the field the transfer lacks
    assert _compile(typed, right).returncode == 0
