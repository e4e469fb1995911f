"""Small, failure-tolerant readers for procfs/sysfs files under a filesystem root.

Every reader takes ``root`` (normally ``Path("/")``) and an absolute-looking
path such as ``"/proc/cpuinfo"``, so tests can point the agent at a fake tree
in a temporary directory. A missing, unreadable or malformed file reads as
``None``: the device probe and the state sampler must never fail because a
kernel or board does not expose something.
"""

from __future__ import annotations

import re
from pathlib import Path

# /proc/cpuinfo on a 256-thread server is a few hundred KB; nothing we read
# is legitimately larger, and a cap keeps a weird file from costing memory.
MAX_READ_BYTES = 4 * 1024 * 1024

_CPU_DIR = re.compile(r"cpu(\d+)$")
_POLICY_DIR = re.compile(r"policy(\d+)$")


def under(root: Path, path: str) -> Path:
    """``path`` ("/proc/cpuinfo") resolved inside ``root`` (``root/proc/cpuinfo``)."""
    return root / path.lstrip("/")


def read_text(root: Path, path: str) -> str | None:
    """The file's text (undecodable bytes replaced), or ``None`` when it cannot be read."""
    try:
        with open(under(root, path), "rb") as f:
            data = f.read(MAX_READ_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def read_line(root: Path, path: str) -> str | None:
    """The first line, stripped of whitespace and trailing NULs; ``None`` if unreadable or empty."""
    text = read_text(root, path)
    if text is None:
        return None
    line = text.split("\n", 1)[0].strip().rstrip("\x00").strip()
    return line or None


def read_int(root: Path, path: str, *, base: int = 10) -> int | None:
    """The first line parsed as an integer in ``base``; ``None`` if unreadable or not a number."""
    line = read_line(root, path)
    if line is None:
        return None
    try:
        return int(line, base)
    except ValueError:
        return None


def numbered_dirs(root: Path, parent: str, pattern: re.Pattern[str]) -> list[Path]:
    """Subdirectories of ``parent`` whose name matches ``pattern`` (one numeric group), by number."""
    base = under(root, parent)
    try:
        entries = list(base.iterdir())
    except OSError:
        return []
    found: list[tuple[int, Path]] = []
    for entry in entries:
        match = pattern.match(entry.name)
        if match is not None:
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def cpu_dirs(root: Path) -> list[Path]:
    """``/sys/devices/system/cpu/cpuN`` directories, in CPU order."""
    return numbered_dirs(root, "/sys/devices/system/cpu", _CPU_DIR)


def cpufreq_dirs(root: Path) -> list[Path]:
    """One cpufreq directory per frequency domain.

    ``/sys/devices/system/cpu/cpufreq/policyN`` when the kernel has policies
    (every kernel since 4.x); else the per-CPU ``cpuN/cpufreq`` directories.
    """
    policies = numbered_dirs(root, "/sys/devices/system/cpu/cpufreq", _POLICY_DIR)
    if policies:
        return policies
    return [d / "cpufreq" for d in cpu_dirs(root) if (d / "cpufreq").is_dir()]


def cpuinfo_fields(root: Path) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per blank-line-separated block (keys and values stripped).

    x86 has one block per logical CPU; ARM kernels add a trailing block with
    ``Hardware``/``Revision``/``Model``. Empty list when unreadable.
    """
    text = read_text(root, "/proc/cpuinfo")
    if text is None:
        return []
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def is_real_root(root: Path) -> bool:
    """True when ``root`` is the machine's own ``/`` (not a test tree).

    Readers consult psutil fallbacks (which always read the real machine) only
    then, so a fake tree gives answers that depend on the tree alone.
    """
    try:
        return root.resolve() == Path("/").resolve()
    except OSError:
        return False
