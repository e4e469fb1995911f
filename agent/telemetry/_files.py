"""sysfs reads that say *why* a value is missing (permission vs. absent vs. malformed).

:mod:`fleetnas.agent._sysfs` answers ``None`` for any failure, which is right
for the CPU probe. Energy needs more: a RAPL counter that exists but is
root-only must be reported as "permission denied: <path>", with the fix, not
as "no RAPL here". Paths resolve inside ``root`` exactly as in ``_sysfs``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent import _sysfs

# Jetson's debugfs and RAPL's energy files are the common root-only cases.
PERMISSION_HINT = "run the agent as root, or grant read access to the file (e.g. a udev rule)"


@dataclass(frozen=True)
class Read:
    """The text of one file, or why it could not be read (exactly one is set)."""

    text: str | None
    reason: str = ""


def read(root: Path, path: str | Path) -> Read:
    """The first line of ``path`` under ``root`` (stripped, NULs removed), or the reason it failed.

    Reasons: ``permission denied: <path>``, ``missing: <path>``,
    ``empty: <path>``, ``unreadable: <path> (<os error>)``; ``<path>`` is
    the path as the system sees it (without the test root).
    """
    full = path if isinstance(path, Path) else _sysfs.under(root, path)
    shown = _shown(root, full)
    try:
        with open(full, "rb") as f:
            data = f.read(4096)
    except PermissionError:
        return Read(None, f"permission denied: {shown}")
    except FileNotFoundError:
        return Read(None, f"missing: {shown}")
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM):
            return Read(None, f"permission denied: {shown}")
        return Read(None, f"unreadable: {shown} ({err.strerror or err})")
    line = data.decode("utf-8", errors="replace").split("\n", 1)[0]
    line = line.replace("\x00", "").strip()
    if not line:
        return Read(None, f"empty: {shown}")
    return Read(line)


@dataclass(frozen=True)
class IntRead:
    """An integer file's value, or why it could not be read (exactly one is set)."""

    value: int | None
    reason: str = ""


def read_int(root: Path, path: str | Path) -> IntRead:
    """The first whitespace-separated token of the file as a base-10 integer, or the reason.

    Some hwmon files append units ("32760 ma"); the first token is the value.
    """
    got = read(root, path)
    if got.text is None:
        return IntRead(None, got.reason)
    token = got.text.split()[0]
    try:
        return IntRead(int(token))
    except ValueError:
        return IntRead(None, f"not a number: {_shown(root, _full(root, path))} ({token!r})")


def _full(root: Path, path: str | Path) -> Path:
    return path if isinstance(path, Path) else _sysfs.under(root, path)


def _shown(root: Path, full: Path) -> str:
    """``full`` as the device sees it: ``/sys/...`` even when ``root`` is a test tree."""
    try:
        return "/" + str(full.relative_to(root)).lstrip("/")
    except ValueError:
        return str(full)
