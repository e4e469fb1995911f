"""Read many small files and command outputs off the phone in one ``adb shell`` call.

A phone is a few milliseconds away per file but tens of milliseconds per
``adb`` call, so Describe and every state sample fetch everything they need
at once: a fixed script changes to ``/``, prints every file matching the
given (relative) glob patterns with one ``grep -H``, then runs the given
commands, each after a marker line. Unreadable or absent files are left
out, as the sysfs readers of the host agent expect (SELinux hides some
thermal zones on some phones).

:meth:`RemoteSnapshot.materialize` writes the files under a local directory
so the host agent's own readers (``agent/_sysfs.py``,
``device_state.read_cpu_frequency``, ``device_probe.cpu_model``) parse them
exactly as they parse this host's ``/sys`` and ``/proc``: one reader per
concept, whichever machine the file came from.

Patterns and commands are constants of this package, never input from the
wire (they are pasted into a shell script).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent.android._adb import DEFAULT_TIMEOUT_S, Adb

COMMAND_MARKER = "@@fleetnas-cmd "
_SAFE_PATTERN = re.compile(r"[A-Za-z0-9_./*\[\]-]+")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class RemoteSnapshot:
    """Files (by path relative to ``/``) and command outputs (by name) read off a phone."""

    files: Mapping[str, str]
    outputs: Mapping[str, str]

    def file(self, path: str) -> str | None:
        """A file's text by its absolute or relative path; None if it was not read."""
        return self.files.get(path.lstrip("/"))

    @contextmanager
    def materialize(self) -> Iterator[Path]:
        """The files written under a temporary root (removed on exit), for root-taking readers."""
        with tempfile.TemporaryDirectory(prefix="fleetnas-phone-") as tmp:
            root = Path(tmp)
            for rel, text in self.files.items():
                target = (root / rel).resolve()
                if root.resolve() not in target.parents:
                    continue  # a hostile name ("../x") never leaves the temporary root
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            yield root


def snapshot_script(patterns: Sequence[str], commands: Mapping[str, str]) -> str:
    """The shell script :func:`fetch` runs (exposed for tests and for reading).

    One ``grep -H '' FILES`` prints every line of every readable file as
    ``path:line`` (one process for all files, where a ``cat`` per file would
    cost a fork each); unmatched globs and unreadable files only make grep
    complain on stderr, which is dropped.
    """
    for pattern in patterns:
        if pattern.startswith("/") or not _SAFE_PATTERN.fullmatch(pattern):
            raise ValueError(f"not a relative glob of plain path characters: {pattern!r}")
    for name in commands:
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"command name must be a plain word: {name!r}")
    parts = ["cd / || exit 97"]
    if patterns:
        parts.append(f"grep -H '' {' '.join(patterns)} 2>/dev/null")
    for name, command in commands.items():
        parts.append(f"printf '\\n{COMMAND_MARKER}%s\\n' {name}; {command} 2>&1")
    parts.append("true")
    return "\n".join(parts)


def parse_snapshot(text: str) -> RemoteSnapshot:
    """Split the script's output back into files and command outputs."""
    files: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    command: str | None = None
    for line in text.split("\n"):
        if line.startswith(COMMAND_MARKER):
            command = line[len(COMMAND_MARKER):].strip()
            outputs[command] = []
        elif command is not None:
            outputs[command].append(line)
        else:
            path, sep, content = line.partition(":")
            if sep and path:
                files.setdefault(path, []).append(content)
    return RemoteSnapshot(
        files={path: "\n".join(lines) + "\n" for path, lines in files.items()},
        outputs={name: "\n".join(lines).strip("\n") + "\n" for name, lines in outputs.items()},
    )


def fetch(
    adb: Adb,
    patterns: Sequence[str],
    commands: Mapping[str, str] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> RemoteSnapshot:
    """Read every file matching ``patterns`` and run ``commands`` on the phone, in one call."""
    result = adb.shell(snapshot_script(patterns, commands or {}), timeout_s=timeout_s)
    return parse_snapshot(result.stdout)
