"""Named errors of the Android backend.

Each derives from :class:`fleetnas.agent.errors.AgentError`, so the agent's
gRPC boundary turns it into a status like any other agent error. The v1
``ErrorReason`` enum has no phone-specific values yet, so every class also
carries ``android_reason``: the name its reason should get when the enum
grows (until then ``reason`` is the closest existing value, INTERNAL where
none fits). Errors that match an existing agent error in meaning subclass
it (a crashed benchmark is a :class:`WorkerCrashed`, a hung one a
:class:`BenchmarkTimeout`), so clients already handle them.

``transient``: whether retrying later (or on another device of the class)
can succeed. A phone that is unplugged or offline may come back; one that
is unauthorized needs a person to tap "Allow" on it.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

from fleetnas.agent import errors
from fleetnas.api.v1 import agent_pb2


class AndroidError(errors.AgentError):
    """Base class: the phone or its tools could not serve the request."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION
    reason: ClassVar[int] = agent_pb2.ERROR_REASON_INTERNAL
    android_reason: ClassVar[str] = "ANDROID_ERROR"


class AdbNotFound(AndroidError):
    """The ``adb`` executable is not on this host (install Android platform-tools)."""

    android_reason = "ADB_NOT_FOUND"


class DeviceNotFound(AndroidError):
    """No device with this serial is attached (``adb devices`` does not list it)."""

    code = grpc.StatusCode.UNAVAILABLE
    android_reason = "DEVICE_NOT_FOUND"
    transient = True


class DeviceUnauthorized(AndroidError):
    """The phone has not accepted this host's adb key (tap "Allow" on the phone)."""

    android_reason = "DEVICE_UNAUTHORIZED"


class DeviceOffline(AndroidError):
    """adb sees the phone but cannot talk to it (offline, still connecting)."""

    code = grpc.StatusCode.UNAVAILABLE
    android_reason = "DEVICE_OFFLINE"
    transient = True


class DeviceLost(AndroidError):
    """The phone went away (unplugged, rebooted) while a command ran on it."""

    code = grpc.StatusCode.UNAVAILABLE
    android_reason = "DEVICE_LOST"
    transient = True


class AdbFailed(AndroidError):
    """adb failed in a way none of the named errors describes (the detail says how)."""

    code = grpc.StatusCode.INTERNAL
    android_reason = "ADB_FAILED"


class PushFailed(AndroidError):
    """``adb push`` could not copy a file to the phone (space, permissions)."""

    code = grpc.StatusCode.ABORTED
    android_reason = "PUSH_FAILED"


class BinaryMissing(AndroidError):
    """The benchmark binary is not where it was said to be (host or phone)."""

    android_reason = "BINARY_MISSING"


class BinaryNotExecutable(AndroidError):
    """The benchmark binary cannot run on the phone (wrong ABI, no exec permission)."""

    android_reason = "BINARY_NOT_EXECUTABLE"


class PhoneBusy(AndroidError):
    """Another agent on this host already drives this phone (its lock is held)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    android_reason = "PHONE_BUSY"


class ToolOutputUnreadable(AndroidError):
    """The benchmark tool finished but its output holds no timing fleetnas can read."""

    code = grpc.StatusCode.INTERNAL
    android_reason = "TOOL_OUTPUT_UNREADABLE"


class BenchmarkCrashed(errors.WorkerCrashed):
    """The benchmark binary died on the phone (signal or non-zero exit); the
    message ends with its last output lines."""

    android_reason: ClassVar[str] = "BENCHMARK_CRASHED"


class BenchmarkCancelled(BenchmarkCrashed):
    """The run was stopped because its client went away (cancel-on-disconnect)."""

    android_reason: ClassVar[str] = "BENCHMARK_CANCELLED"


class BenchmarkHung(errors.BenchmarkTimeout):
    """The benchmark ran past its timeout; it was killed on the host and on the phone."""

    android_reason: ClassVar[str] = "BENCHMARK_HUNG"


ANDROID_ERRORS: tuple[type[errors.AgentError], ...] = (
    AdbNotFound,
    DeviceNotFound,
    DeviceUnauthorized,
    DeviceOffline,
    DeviceLost,
    AdbFailed,
    PushFailed,
    BinaryMissing,
    BinaryNotExecutable,
    PhoneBusy,
    ToolOutputUnreadable,
    BenchmarkCrashed,
    BenchmarkCancelled,
    BenchmarkHung,
)
