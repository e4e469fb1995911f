"""Named errors of the Android backend.

The phone's own errors (no adb, no device, unauthorized, offline, lost,
push failed, binary missing or not executable, phone busy, unreadable tool
output) live in :mod:`fleetnas.agent.errors`, each with its own v1
``ErrorReason`` (``ERROR_REASON_DEVICE_LOST`` ...), so that a client turns
a status back into the same class without loading this package; they are
re-exported here. A benchmark that fails on the phone is what it would be
on any agent: a :class:`BenchmarkCrashed` is a
:class:`~fleetnas.agent.errors.WorkerCrashed` (WORKER_CRASHED), a
:class:`BenchmarkHung` a :class:`~fleetnas.agent.errors.BenchmarkTimeout`
(TIMEOUT), so clients already handle them.
"""

from __future__ import annotations

from fleetnas.agent import errors
from fleetnas.agent.errors import (
    AdbFailed,
    AdbNotFound,
    AndroidError,
    BinaryMissing,
    BinaryNotExecutable,
    DeviceLost,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    PhoneBusy,
    PushFailed,
    ToolOutputUnreadable,
)

__all__ = [
    "ANDROID_ERRORS", "AdbFailed", "AdbNotFound", "AndroidError", "BenchmarkCancelled",
    "BenchmarkCrashed", "BenchmarkHung", "BinaryMissing", "BinaryNotExecutable", "DeviceLost",
    "DeviceNotFound", "DeviceOffline", "DeviceUnauthorized", "PhoneBusy", "PushFailed",
    "ToolOutputUnreadable",
]  # fmt: skip


class BenchmarkCrashed(errors.WorkerCrashed):
    """The benchmark binary died on the phone (signal or non-zero exit); the
    message ends with its last output lines."""


class BenchmarkCancelled(BenchmarkCrashed):
    """The run was stopped because its client went away (cancel-on-disconnect)."""


class BenchmarkHung(errors.BenchmarkTimeout):
    """The benchmark ran past its timeout; it was killed on the host and on the phone."""


ANDROID_ERRORS: tuple[type[errors.AgentError], ...] = (
    *errors.PHONE_ERRORS, BenchmarkCrashed, BenchmarkCancelled, BenchmarkHung,
)
