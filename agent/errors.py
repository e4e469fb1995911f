"""Named errors of the agent, shared by the server and the client.

Each error knows its gRPC status code and its ``fleetnas-reason`` value (the
``ErrorReason`` enum of the v1 API, sent as trailing metadata). The server
raises these and :func:`abort_with` turns them into a status; the client turns
a status back into the same class with :func:`from_rpc_error`, so code above
the client never sees ``grpc.RpcError``.

``transient`` says whether retrying the same request (possibly on another
device of the same class) can succeed: a corrupt model never will, a full
queue or a killed worker may.

What crosses the wire is bounded and clean: :func:`abort_with` sends at most
:data:`MAX_DETAIL_CHARS` of ``message`` (gRPC carries it in a trailer, and
trailers over 16 KB arrive as "Stream removed"), and never ``private``: host
paths, tracebacks and a worker's stderr go there, for the agent's log only.
Messages quote client values through :func:`echo`, which cuts them short.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

# Bounding and quoting live in a grpc-free module the benchmark worker shares.
from fleetnas.agent._text import MAX_DETAIL_CHARS as MAX_DETAIL_CHARS
from fleetnas.agent._text import MAX_ECHO_CHARS as MAX_ECHO_CHARS
from fleetnas.agent._text import bounded as bounded
from fleetnas.agent._text import echo as echo
from fleetnas.api.v1 import agent_pb2

REASON_METADATA_KEY = "fleetnas-reason"
# gRPC core's detail when a message exceeds max_{send,receive}_message_length.
_GRPC_MESSAGE_SIZE_DETAIL = "message larger than max"


class AgentError(Exception):
    """Base class: a request the agent could not serve."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: ClassVar[int] = agent_pb2.ERROR_REASON_INTERNAL
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, private: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: detail for the agent's log only (paths, tracebacks, stderr); never sent
        self.private = private

    @property
    def reason_name(self) -> str:
        return agent_pb2.ErrorReason.Name(self.reason)


class ModelInvalid(AgentError):
    """The model bytes cannot be parsed or loaded by onnxruntime."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = agent_pb2.ERROR_REASON_MODEL_INVALID


class UnsupportedOperator(AgentError):
    """The model uses an operator this agent's onnxruntime cannot run."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = agent_pb2.ERROR_REASON_UNSUPPORTED_OPERATOR


class ChecksumMismatch(AgentError):
    """Uploaded bytes do not hash to the declared sha256."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = agent_pb2.ERROR_REASON_CHECKSUM_MISMATCH


class InvalidUpload(AgentError):
    """The upload stream is malformed (no header, bad hash syntax, wrong size)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = agent_pb2.ERROR_REASON_INVALID_UPLOAD


class ModelTooLarge(AgentError):
    """The model is over the agent's size cap."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = agent_pb2.ERROR_REASON_MODEL_TOO_LARGE


class ModelNotFound(AgentError):
    """No model with that hash is cached on the agent."""

    code = grpc.StatusCode.NOT_FOUND
    reason = agent_pb2.ERROR_REASON_MODEL_NOT_FOUND


class BenchmarkTimeout(AgentError):
    """The benchmark ran past its wall-clock timeout; its worker was killed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = agent_pb2.ERROR_REASON_TIMEOUT


class MemoryCapExceeded(AgentError):
    """The benchmark worker went over its memory cap and was stopped."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = agent_pb2.ERROR_REASON_MEMORY_CAP


class InvalidSettings(AgentError):
    """The benchmark settings are invalid for this model or this agent."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = agent_pb2.ERROR_REASON_INVALID_SETTINGS


class Unauthenticated(AgentError):
    """The request carried no token or a wrong one."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = agent_pb2.ERROR_REASON_UNAUTHENTICATED


class QueueFull(AgentError):
    """The agent's benchmark queue is full; try later or another device."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = agent_pb2.ERROR_REASON_QUEUE_FULL
    transient = True


class AgentOverloaded(AgentError):
    """Too many calls of one kind are in progress on the agent; retry with backoff.

    Transient: the agent is up and the request may be fine, it only arrived
    while its RPC kind's budget of handler threads was spent (or, reasonless
    from gRPC itself, "Concurrent RPC limit exceeded!"). Retry the same
    device after a backoff, or another device of the class; do not count it
    against the device's health.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = agent_pb2.ERROR_REASON_AGENT_OVERLOADED
    transient = True


class WorkerCrashed(AgentError):
    """The benchmark worker died (killed or crashed) before returning a result."""

    code = grpc.StatusCode.ABORTED
    reason = agent_pb2.ERROR_REASON_WORKER_CRASHED
    transient = True


class ShuttingDown(AgentError):
    """The agent is draining for shutdown and takes no new work."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = agent_pb2.ERROR_REASON_SHUTTING_DOWN
    transient = True


class InternalError(AgentError):
    """An unexpected failure inside the agent."""


# -- a phone over ADB (fleetnas-agent serve --adb; agent/android, docs/android.md) -------
# Here rather than in agent/android so that a client maps their reasons back
# to these classes without loading the Android backend. ``transient``: a phone
# that is unplugged or offline may come back; an unauthorized one needs a
# person to tap "Allow" on it.


class AndroidError(AgentError):
    """Base class: the phone or its tools could not serve the request."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AdbNotFound(AndroidError):
    """The ``adb`` executable is not on this host (install Android platform-tools)."""

    reason = agent_pb2.ERROR_REASON_ADB_NOT_FOUND


class DeviceNotFound(AndroidError):
    """No device with this serial is attached (``adb devices`` does not list it)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = agent_pb2.ERROR_REASON_DEVICE_NOT_FOUND
    transient = True


class DeviceUnauthorized(AndroidError):
    """The phone has not accepted this host's adb key (tap "Allow" on the phone)."""

    reason = agent_pb2.ERROR_REASON_DEVICE_UNAUTHORIZED


class DeviceOffline(AndroidError):
    """adb sees the phone but cannot talk to it (offline, still connecting)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = agent_pb2.ERROR_REASON_DEVICE_OFFLINE
    transient = True


class DeviceLost(AndroidError):
    """The phone went away (unplugged, rebooted) while a command ran on it."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = agent_pb2.ERROR_REASON_DEVICE_LOST
    transient = True


class AdbFailed(AndroidError):
    """adb failed in a way none of the named errors describes (the detail says how)."""

    code = grpc.StatusCode.INTERNAL
    reason = agent_pb2.ERROR_REASON_ADB_FAILED


class PushFailed(AndroidError):
    """``adb push`` could not copy a file to the phone (space, permissions)."""

    code = grpc.StatusCode.ABORTED
    reason = agent_pb2.ERROR_REASON_PUSH_FAILED


class BinaryMissing(AndroidError):
    """The benchmark binary is not where it was said to be (host or phone)."""

    reason = agent_pb2.ERROR_REASON_BINARY_MISSING


class BinaryNotExecutable(AndroidError):
    """The benchmark binary cannot run on the phone (wrong ABI, no exec permission)."""

    reason = agent_pb2.ERROR_REASON_BINARY_NOT_EXECUTABLE


class PhoneBusy(AndroidError):
    """Another agent on this host already drives this phone (its lock is held)."""

    reason = agent_pb2.ERROR_REASON_PHONE_BUSY


class ToolOutputUnreadable(AndroidError):
    """The benchmark tool finished but its output holds no timing fleetnas can read."""

    code = grpc.StatusCode.INTERNAL
    reason = agent_pb2.ERROR_REASON_TOOL_OUTPUT_UNREADABLE


#: the phone's errors, one per phone reason
PHONE_ERRORS: tuple[type[AndroidError], ...] = (
    AdbNotFound, DeviceNotFound, DeviceUnauthorized, DeviceOffline, DeviceLost, AdbFailed,
    PushFailed, BinaryMissing, BinaryNotExecutable, PhoneBusy, ToolOutputUnreadable,
)  # fmt: skip


class AgentUnavailable(AgentError):
    """Client side: the agent could not be reached (down, wrong address, TLS mismatch)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = agent_pb2.ERROR_REASON_UNSPECIFIED
    transient = True


class AgentDeadlineExceeded(AgentError):
    """Client side: the call's own deadline passed before the agent answered."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = agent_pb2.ERROR_REASON_UNSPECIFIED
    transient = True


class MessageTooLarge(AgentError):
    """Client side: one gRPC message went over a size limit (gRPC's own check, no reason)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = agent_pb2.ERROR_REASON_UNSPECIFIED


_SERVER_ERRORS: tuple[type[AgentError], ...] = (
    ModelInvalid,
    UnsupportedOperator,
    ChecksumMismatch,
    InvalidUpload,
    ModelTooLarge,
    ModelNotFound,
    BenchmarkTimeout,
    MemoryCapExceeded,
    InvalidSettings,
    Unauthenticated,
    QueueFull,
    AgentOverloaded,
    WorkerCrashed,
    ShuttingDown,
    InternalError,
    *PHONE_ERRORS,
)
_BY_REASON: dict[int, type[AgentError]] = {cls.reason: cls for cls in _SERVER_ERRORS}


def abort_with(context: grpc.ServicerContext, error: AgentError) -> None:
    """Abort the RPC with the error's status, bounded message and reason (never returns)."""
    context.set_trailing_metadata(((REASON_METADATA_KEY, error.reason_name),))
    context.abort(error.code, bounded(error.message))


def from_rpc_error(err: grpc.RpcError) -> AgentError:
    """Translate a failed call into the matching named error.

    The reason metadata decides the class when present; otherwise the status
    code does (UNAVAILABLE → AgentUnavailable, DEADLINE_EXCEEDED without a
    reason → AgentDeadlineExceeded, UNAUTHENTICATED → Unauthenticated).
    A RESOURCE_EXHAUSTED without a reason comes from gRPC itself: its
    message-size check ("... message larger than max ...") → MessageTooLarge,
    anything else (its concurrent-RPC limit) → AgentOverloaded, transient.
    """
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else None) or str(err)
    reason_name = ""
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == REASON_METADATA_KEY:
            reason_name = value if isinstance(value, str) else value.decode()
    if reason_name:
        try:
            cls = _BY_REASON.get(agent_pb2.ErrorReason.Value(reason_name))
        except ValueError:
            cls = None
        if cls is not None:
            return cls(details)
    if code == grpc.StatusCode.UNAVAILABLE:
        return AgentUnavailable(f"agent unavailable: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return AgentDeadlineExceeded(f"call deadline exceeded: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if _GRPC_MESSAGE_SIZE_DETAIL in details:
            return MessageTooLarge(f"gRPC message size limit: {details}")
        return AgentOverloaded(f"agent overloaded: {details}")
    return InternalError(f"{code.name if code else 'UNKNOWN'}: {details}")
