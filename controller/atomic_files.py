"""Write files so that readers see the old content or the new, never a part.

The one atomic-write mechanism of the controller (cost-DB exports, fleet
files, LUT files, search reports, the ONNX export cache): the content goes to
a hidden temporary file next to the target, which then replaces the target in
one ``os.replace`` (atomic on POSIX and Windows within one file system). On
any failure the temporary file is removed and the target is left as it was.

Permissions: a new file gets ``0o666`` less the process umask, as ``open``
would give it (these files are meant to be shared: exports, LUTs, reports,
fleet files that hold no secrets); a file that existed keeps its mode. The
temporary file is created with those permissions from the start (never
``mkstemp``'s ``0o600``, which would leak into the target).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_writer(
    path: str | Path, *, binary: bool = False, fsync: bool = False, make_parents: bool = True
) -> Iterator[IO[Any]]:
    """A file handle whose content appears at ``path`` only once the block completes.

    Text mode writes UTF-8 with newlines as given. ``fsync`` flushes the data
    to disk before the rename (for files that must survive a crash, such as
    exports). ``make_parents`` creates missing parent folders; without it a
    missing folder raises FileNotFoundError.
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(target)
    try:
        mode = "wb" if binary else "w"
        encoding = None if binary else "utf-8"
        newline = None if binary else ""
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_temp(target: Path) -> tuple[int, str]:
    """A new hidden file next to ``target`` with the permissions of the module docstring."""
    try:
        existing: int | None = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        existing = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        if existing is not None:
            try:
                os.chmod(tmp, existing)
            except BaseException:
                os.close(fd)
                Path(tmp).unlink(missing_ok=True)
                raise
        return fd, tmp
    raise FileExistsError(f"no free temporary name next to {target}")


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; return the path.

    Creates missing parent folders.
    """
    with atomic_writer(path) as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path. Creates missing parent folders."""
    with atomic_writer(path, binary=True) as handle:
        handle.write(data)
    return Path(path)
