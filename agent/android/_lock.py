"""One agent per phone per host: an exclusive file lock keyed by the adb serial.

Two agents on one host that drive the same phone would push, kill and
benchmark over each other, so an agent takes ``<lock_dir>/<serial>.lock``
with ``flock(LOCK_EX | LOCK_NB)`` when it starts and holds it until it
stops. The kernel drops the lock when the holder dies, however it dies, so
a crashed agent never leaves a stale lock. The file records the holder's
pid for the error message of the agent that finds it taken.

The lock is per host: two hosts reaching one phone over ``adb connect``
are not stopped by it (the fleet scheduler's one-benchmark-per-fingerprint
rule, with the phone's own serial in the fingerprint, still keeps their
benchmarks apart).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

from fleetnas.agent.android import _errors

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def default_lock_dir() -> Path:
    """``$XDG_RUNTIME_DIR/fleetnas-adb`` when set, else ``<tmp>/fleetnas-adb-<uid>``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "fleetnas-adb"
    return Path(tempfile.gettempdir()) / f"fleetnas-adb-{os.getuid()}"


def lock_path(serial: str, lock_dir: Path) -> Path:
    """The lock file of ``serial`` (``emulator-5554``, ``192.168.1.5:5555`` ...)."""
    return lock_dir / f"{_UNSAFE.sub('_', serial)}.lock"


class PhoneLock:
    """Exclusive, non-blocking, per-host lock on one phone. Use as a context manager
    or call :meth:`acquire` / :meth:`release`."""

    def __init__(self, serial: str, *, lock_dir: Path | None = None) -> None:
        self.serial = serial
        self.path = lock_path(serial, lock_dir or default_lock_dir())
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock; PhoneBusy (naming the holder's pid) if another process holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise _errors.PhoneBusy(
                f"phone {self.serial} is already driven by another fleetnas agent on this host "
                f"(pid {holder}, lock {self.path}); stop that agent or pick another phone"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> PhoneLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
