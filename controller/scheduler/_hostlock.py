"""One benchmark per physical host across processes: a lock file per host fingerprint.

Two controllers on one machine (two ``fleetnas search`` runs, a search and a
``lut build``) each keep their own in-process host lock, and would run
benchmarks on two agents of one host at once. :class:`HostLocks` adds an
advisory lock (``fcntl.flock``, exclusive, non-blocking) on the file
``<runtime dir>/fleetnas/hosts/<sha256 of the fingerprint, 32 hex>.lock``,
held for the whole attempt (upload and benchmark). The runtime dir is
``$XDG_RUNTIME_DIR`` (per user, on tmpfs), else ``<tmp>/fleetnas-<uid>``
(made ``0700``). The kernel drops a lock when its holder exits, even by
SIGKILL, so a crashed controller never blocks a host.

Scope: controllers of one user on one machine. Controllers of other users or
on other machines do not see each other's locks. Where ``fcntl`` does not
exist (Windows) only the in-process lock applies.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def default_lock_dir() -> Path:
    """``$XDG_RUNTIME_DIR/fleetnas/hosts``, else ``<tmp>/fleetnas-<uid>/hosts``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime) / "fleetnas" / "hosts"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"fleetnas-{uid}" / "hosts"


class HostLocks:
    """Exclusive cross-process locks by host fingerprint (module docstring). Thread-safe."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_lock_dir()
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def path(self, host: str) -> Path:
        """The lock file of ``host`` (its fingerprint, hashed: any text is a safe file name)."""
        return self.directory / f"{hashlib.sha256(host.encode()).hexdigest()[:32]}.lock"

    def try_acquire(self, host: str) -> bool:
        """Take the lock of ``host`` if no other process holds it; never blocks."""
        if fcntl is None:
            return True
        with self._lock:
            if host in self._held:
                return False
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path(host), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: another process holds it
                os.close(fd)
                return False
            self._held[host] = fd
            return True

    def release(self, host: str) -> None:
        """Give the lock of ``host`` back (no-op if not held)."""
        with self._lock:
            fd = self._held.pop(host, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock
