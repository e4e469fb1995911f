"""docs/dataflow.md names real code: every `path: Name.attr` reference resolves.

The page walks one benchmark hop by hop and names, for each hop, a file and a
function, class or method in it (`controller/driver/_driver.py:
SearchDriver.run()`). This test parses every such reference and checks with
``ast`` (no imports: nothing runs) that the file exists and defines that name,
so a rename or a move breaks the test instead of leaving the page stale.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "dataflow.md"
# `agent/service.py: AgentService.Benchmark()` -- the path, then a dotted name, "()" optional.
REFERENCE = re.compile(r"`(?P<path>[\w./-]+\.py): (?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(\))?`")
# The hops the walk must name (the brief's list): dropping one from the page fails here.
REQUIRED = {
    ("controller/cli/search.py", "search"),
    ("controller/driver/_driver.py", "SearchDriver.run"),
    ("controller/scheduler/_scheduler.py", "Scheduler.run"),
    ("agent/client.py", "AgentClient.benchmark"),
    ("agent/service.py", "AgentService.Benchmark"),
    ("agent/shells/_local.py", "LocalShell.benchmark"),
    ("agent/runner.py", "BenchmarkRunner.run"),
    ("agent/_forkserver.py", "ForkServer.fork"),
    ("agent/worker_main.py", "serve"),
    ("agent/_worker_bench.py", "run_job"),
    ("agent/backends/_onnxruntime.py", "OnnxRuntimeBackend.load"),
    ("controller/costdb/_database.py", "CostDB.record_measurement"),
    ("controller/search/_engine.py", "SearchEngine.tell"),
    ("controller/driver/_store.py", "SearchStore.commit"),
}

Node = ast.Module | ast.ClassDef


def references(text: str) -> list[tuple[str, str]]:
    return [(m["path"], m["name"]) for m in REFERENCE.finditer(text)]


@cache
def _tree(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def _defined(scope: Node, name: str) -> ast.AST | None:
    """The def, class or assigned name ``name`` directly in ``scope`` (if/try blocks included)."""
    pending: list[ast.stmt] = list(scope.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return node
        elif isinstance(node, ast.If | ast.Try):
            pending.extend(node.body + node.orelse)
    return None


def resolve(path: str, dotted: str) -> str | None:
    """None if ``path`` defines ``dotted``; else what is wrong, in words."""
    if not (ROOT / path).is_file():
        return f"{path}: no such file"
    scope: ast.AST = _tree(path)
    walked: list[str] = []
    for part in dotted.split("."):
        if not isinstance(scope, ast.Module | ast.ClassDef):
            return f"{path}: {'.'.join(walked)} is not a class, so it has no {part}"
        found = _defined(scope, part)
        if found is None:
            where = ".".join(walked) or "the module"
            return f"{path}: {where} defines no {part}"
        walked.append(part)
        scope = found
    return None


def test_the_reference_pattern_reads_the_page_forms() -> None:
    text = "a `agent/runner.py: BenchmarkRunner.run()` b `agent/x.py: f` c `not a ref`"
    assert references(text) == [("agent/runner.py", "BenchmarkRunner.run"), ("agent/x.py", "f")]


def test_resolve_rejects_what_is_not_there() -> None:
    assert resolve("agent/runner.py", "BenchmarkRunner.run") is None
    assert resolve("agent/runner.py", "BenchmarkRunner.no_such_method") is not None
    assert resolve("agent/runner.py", "NoSuchClass") is not None
    assert resolve("agent/no_such_file.py", "x") is not None


def test_the_walk_names_every_hop() -> None:
    found = set(references(PAGE.read_text(encoding="utf-8")))
    missing = sorted(REQUIRED - found)
    assert not missing, f"docs/dataflow.md no longer names these hops: {missing}"


@pytest.mark.parametrize("path,name", sorted(set(references(PAGE.read_text(encoding="utf-8")))))
def test_every_reference_resolves(path: str, name: str) -> None:
    problem = resolve(path, name)
    assert problem is None, f"docs/dataflow.md names `{path}: {name}`, but {problem}"
