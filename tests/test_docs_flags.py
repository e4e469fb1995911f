"""Every flag of every command is in the docs page for that command.

Walks the click tree of ``fleetnas`` (controller/cli) and the argparse tree of
``fleetnas-agent`` (agent/cli.py) and asserts that every option of every
command appears, spelled as on the command line (``--max-retries``), in the
page that documents the command. The mapping command -> page is
:data:`PAGE_OF` below: the longest matching command prefix wins.

A flag "appears" when its spelling occurs in the page as a whole token (so
``--threads`` does not count for ``--inter-threads``). An option is checked by
its long spellings (every one of them, ``--json``/``--no-json`` included);
one with short spellings only (``-o``) by those. ``--help`` and ``--version``
are left out: every command has them.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import click

from fleetnas.agent import cli as agent_cli
from fleetnas.agent.settings import flag_settings
from fleetnas.controller.cli import main

ROOT = Path(__file__).resolve().parents[1]
# command (as typed, without options) -> the page that documents it.
PAGE_OF: dict[str, str] = {
    "fleetnas": "README.md",              # the group's own options (--db)
    "fleetnas agent": "docs/fleet.md",    # fleetnas agent local
    "fleetnas compare": "docs/compress.md",
    "fleetnas db": "docs/costdb.md",
    "fleetnas demo": "docs/demo.md",
    "fleetnas export": "docs/spaces.md",  # export of archs: docs/spaces.md "ONNX export"
    "fleetnas fleet": "docs/fleet.md",
    "fleetnas lut": "docs/lut.md",
    "fleetnas measure": "docs/fleet.md",
    "fleetnas proxies": "docs/search.md",
    "fleetnas quantize": "docs/compress.md",
    "fleetnas report": "docs/report.md",
    "fleetnas search": "docs/search.md",
    "fleetnas space": "docs/lut.md",
    "fleetnas supernet": "docs/supernet.md",
    "fleetnas-agent": "docs/agent.md",
}
SKIPPED = {"--help", "-h", "--version"}


def page_for(command: str) -> str:
    words = command.split()
    for n in range(len(words), 0, -1):
        page = PAGE_OF.get(" ".join(words[:n]))
        if page is not None:
            return page
    raise AssertionError(f"no docs page is mapped for `{command}`: add it to PAGE_OF")


def _spellings(opts: list[str]) -> list[str]:
    long = [o for o in opts if o.startswith("--")]
    return [o for o in (long or opts) if o not in SKIPPED]


def click_flags(command: click.Command, path: str) -> Iterator[tuple[str, str]]:
    """(command path, flag) for every option of ``command`` and its subcommands."""
    for param in command.params:
        if isinstance(param, click.Option):
            for flag in _spellings([*param.opts, *param.secondary_opts]):
                yield path, flag
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path.split()[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"`{path} {name}` is listed but cannot be loaded"
            yield from click_flags(sub, f"{path} {name}")


def argparse_flags(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from argparse_flags(sub, f"{path} {name}")
        elif action.option_strings:
            for flag in _spellings(list(action.option_strings)):
                yield path, flag


def all_flags() -> list[tuple[str, str]]:
    return [*click_flags(main, "fleetnas"), *argparse_flags(agent_cli._parser(), "fleetnas-agent")]


@cache
def _text(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def mentions(text: str, flag: str) -> bool:
    """``flag`` occurs in ``text`` as a whole token (not inside a longer flag)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


#: the benchmark-settings flags, generated on every measuring command from agent/settings.py's
#: table: documented once, with that table, in the agent's page
SETTINGS_PAGE = "docs/agent.md"
SETTINGS_FLAGS = frozenset(s.flag for s in flag_settings())


def documented(flag: str, page: str) -> bool:
    if flag in SETTINGS_FLAGS and mentions(_text(SETTINGS_PAGE), flag):
        return True
    return mentions(_text(page), flag)


def test_the_walk_finds_the_commands_and_their_flags() -> None:
    flags = all_flags()
    commands = {command for command, _ in flags}
    for expected in ("fleetnas", "fleetnas search", "fleetnas db export", "fleetnas lut build",
                     "fleetnas-agent serve", "fleetnas-agent bench"):
        assert expected in commands, f"the walk did not reach `{expected}`"
    assert ("fleetnas-agent serve", "--port-file") in flags
    assert ("fleetnas measure", "--max-retries") in flags


def test_a_flag_counts_only_as_a_whole_token() -> None:
    assert mentions("use `--threads 2`", "--threads")
    assert mentions("| `--threads` |", "--threads")
    assert not mentions("use --inter-threads 2", "--threads")
    assert not mentions("use --threads-per-core", "--threads")
    assert not mentions("no flags here", "--db")


def test_every_flag_is_in_its_commands_docs_page() -> None:
    missing: dict[tuple[str, str], list[str]] = {}
    for command, flag in all_flags():
        page = page_for(command)
        if not documented(flag, page):
            missing.setdefault((page, command), []).append(flag)
    report = "\n".join(f"  {page}: `{command}` " + " ".join(sorted(set(flags)))
                       for (page, command), flags in sorted(missing.items()))
    assert not missing, f"flags missing from their command's docs page (add them there):\n{report}"
