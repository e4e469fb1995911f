"""Docs that run: every code block of README.md and docs/*.md runs here, or says why not.

A fenced block whose language is ``python``, ``bash``, ``sh`` or ``console``
is either

* **executed**: the blocks of one page run in order in one temp dir (a page
  is a tutorial: a later block may use a file an earlier one wrote), each with
  a timeout; or
* **marked not runnable**, with the reason, by an HTML comment on the line
  just before the fence::

      <!-- not-run: needs a phone on adb -->

What a block finds in its temp dir and environment (the harness provides it,
like a reader's machine would):

* ``model.onnx``: a small ONNX MLP (``tests/onnx_models.mlp``);
* ``FLEETNAS_AGENT_ADDRESS`` / ``FLEETNAS_AGENT_TOKEN``: a real local agent on
  loopback that requires that token (started once for the module);
* ``XDG_CACHE_HOME`` in a fresh folder (exports are not reused across runs);
* ``PATH`` starting with this virtualenv's ``bin`` (``fleetnas``,
  ``fleetnas-agent``, ``sqlite-utils``, ``python``), and no other
  ``FLEETNAS_*`` variable of the caller's.

``python`` blocks run as a script file (``doc_block_LINE.py``) with this interpreter; ``bash``/``sh``
blocks with ``bash -e -o pipefail``; ``console`` blocks run their ``$ ``
command lines (continued by a trailing backslash or an open quote) and ignore
the output lines.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from tests.onnx_models import mlp

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "sh", "console")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
BLOCK_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the marker's reason; None: the block is executed

    def __str__(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line} ({self.lang})"


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks in a runnable language, in order, with their markers."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        if fence["lang"] in LANGUAGES:
            marker = MARKER.match(lines[i - 1]) if i > 0 else None
            found.append(Block(page, i + 1, fence["lang"], "\n".join(lines[i + 1:end]) + "\n",
                               marker["reason"] if marker else None))
        i = end + 1
    return found


def markers_without_a_block(page: Path) -> list[int]:
    """Lines of not-run markers not directly followed by a runnable fence (they mark nothing)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    bad = []
    for i, line in enumerate(lines):
        if MARKER.match(line):
            fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if fence is None or fence["lang"] not in LANGUAGES:
                bad.append(i + 1)
    return bad


def console_commands(code: str) -> list[str]:
    """The commands of a console block: each ``$ `` line with its continuation lines."""
    commands: list[str] = []
    current: list[str] | None = None
    for line in code.splitlines():
        if current is not None:
            text = "\n".join(current)
            if text.endswith("\\") or text.count('"') % 2 or text.count("'") % 2:
                current.append(line)
                continue
            commands.append(text)
            current = None
        if line.startswith("$ "):
            current = [line[2:]]
    if current is not None:
        commands.append("\n".join(current))
    return commands


def script_of(block: Block, workdir: Path) -> tuple[list[str], str]:
    """(argv, stdin text) that executes ``block`` in ``workdir``.

    A python block runs from a file, as a reader's saved script would: code
    read from stdin cannot start spawned processes (their ``__main__`` is
    re-read from a file), so multiprocessing examples would fail quietly.
    """
    if block.lang == "python":
        script = workdir / f"doc_block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        return [sys.executable, str(script)], ""
    code = block.code if block.lang != "console" else "\n".join(console_commands(block.code)) + "\n"
    return ["bash", "-e", "-o", "pipefail", "-s"], code


@pytest.fixture(scope="module")
def doc_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAgent]:
    token = secrets.token_hex(16)
    (agent,) = start_local_agents(1, tmp_path_factory.mktemp("doc-agent"), name_prefix="doc",
                                  token=token)
    yield agent
    stop_local_agents([agent], timeout_s=10)


def block_env(agent: LocalAgent, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETNAS_")}
    env["XDG_CACHE_HOME"] = str(cache)  # export caches: no run reuses another's files
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FLEETNAS_AGENT_ADDRESS"] = agent.address
    assert agent.token is not None
    env["FLEETNAS_AGENT_TOKEN"] = agent.token
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_block(block: Block, workdir: Path, env: dict[str, str]) -> None:
    argv, stdin = script_of(block, workdir)
    try:
        done = subprocess.run(argv, input=stdin, cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block} ran past {BLOCK_TIMEOUT_S:.0f} s; give it a smaller size or mark "
                    "it <!-- not-run: REASON -->")
    assert done.returncode == 0, (
        f"{block} failed (exit {done.returncode}) as written:\n{block.code}\n"
        f"--- stdout (tail)\n{done.stdout[-3000:]}\n--- stderr (tail)\n{done.stderr[-3000:]}"
    )


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]
RUN_PAGES = [p for p in PAGES if any(b.not_run is None for b in blocks(p))]


def test_the_parser_reads_fences_markers_and_console_commands(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("text\n<!-- not-run: needs a phone -->\n```bash\nadb devices\n```\n"
                    "```python\nprint(1)\n```\n```text\nnot code\n```\n")
    found = blocks(page)
    assert [(b.line, b.lang, b.not_run) for b in found] == [(3, "bash", "needs a phone"),
                                                             (6, "python", None)]
    assert console_commands('$ a \\\n  b\n$ sqlite3 x "SELECT 1\n  FROM t"\noutput line\n') == [
        "a \\\n  b", 'sqlite3 x "SELECT 1\n  FROM t"']


def test_the_docs_have_blocks_and_some_run() -> None:
    assert len(ALL_BLOCKS) >= 30, "the block parser finds too few blocks: is the fence regex right?"
    assert len([b for b in ALL_BLOCKS if b.not_run is None]) >= 8


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_marker_marks_a_block_and_names_a_reason(page: Path) -> None:
    assert not markers_without_a_block(page), (
        f"{page.relative_to(ROOT)}: the not-run markers on lines {markers_without_a_block(page)} "
        "are not directly before a ```python/bash/sh/console fence")
    unexplained = [str(b) for b in blocks(page) if b.not_run is not None and not b.not_run]
    assert not unexplained, f"not-run markers without a reason: {unexplained}"


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_page_runs_as_written(page: Path, tmp_path: Path, doc_agent: LocalAgent) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "model.onnx").write_bytes(mlp(16, 2))
    env = block_env(doc_agent, tmp_path / "cache")
    for block in blocks(page):
        if block.not_run is None:
            run_block(block, workdir, env)


def test_a_failing_block_fails_the_page(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "")}
    ok = Block(tmp_path / "p.md", 1, "console", "$ true\nsome output\n", None)
    run_block(ok, tmp_path, env)
    for lang, code in (("python", "raise SystemExit(3)\n"), ("bash", "false\necho never\n"),
                       ("console", "$ true\n$ false\n$ true\n")):
        with pytest.raises(AssertionError, match="failed"):
            run_block(Block(tmp_path / "p.md", 1, lang, code, None), tmp_path, env)
