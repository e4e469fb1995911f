"""The pipe protocol between the benchmark runner (parent) and one worker process.

Messages are frozen dataclasses; each travels as one binary frame::

    b"FNW" | version: u8 | kind: u8 | header_len: u32 | blob_len: u32 | header | blob

(big-endian). ``header`` is a UTF-8 JSON object of the message's scalar
fields; ``blob`` is raw bytes (a serialized protobuf) or empty. Each message
class encodes its own fields and decodes them with a type check per field,
so a reader gets a typed message or a :class:`ProtocolError`, never a loose
dict. A reader learns a frame's size from its fixed 13-byte prefix and
refuses one over its cap before buffering it.

Why this and not the alternatives: JSON lines needed base64 around the
protobuf and a line-length cap that silently truncated a large job (a 1 MB
input name came back as WORKER_CRASHED); protobuf messages for the frames
would need a .proto and generated code for a private pipe between two
modules of one install. The protobufs the API already has (settings,
result) ride as blobs, untouched.

Worker → parent (the worker's original stdout; fd 1 itself is pointed at
stderr so that native libraries printing to stdout cannot corrupt it):
:class:`Ready` once its runtimes are imported, :class:`Accepted` the moment it has
read its job (before any of the job's work: a worker that dies before saying it
never ran the job, so the runner may give the job to another worker), then
exactly one of :class:`Result` or :class:`Failure`. Parent → worker (stdin): exactly one
:class:`Job`, then EOF; EOF before any job means "exit quietly" (a spare
being discarded).

Only the agent's own runner talks to a worker; nothing here comes from the
wire: the model is a path into the agent's own cache. A bump of
:data:`VERSION` makes an old worker's frames a ProtocolError, not a misread.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

# client_text lived here once: re-exported for callers that still import it from here.
from fleetnas.agent._text import client_text as client_text
from fleetnas.agent._text import echo
from fleetnas.agent.reference import Calibration

VERSION = 3  # 2: Ready names every runtime's version; Job carries the engine cache keys
# 3: Accepted
_MAGIC = b"FNW"
_PREFIX = struct.Struct(">3sBBII")  # magic, version, kind, header_len, blob_len
PREFIX_BYTES = _PREFIX.size
# Error classes a worker may name (all in fleetnas.agent.errors).
REASONS = frozenset(
    {"ModelInvalid", "UnsupportedOperator", "InvalidSettings", "MemoryCapExceeded", "InternalError"}
)
# Worker → parent: a result with 100,000 paired runs is ~3 MB; settings echoed in it at most
# the gRPC request cap (8 MB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Parent → worker: the settings come from one gRPC request (at most 8 MB) plus two paths.
MAX_JOB_BYTES = 16 * 1024 * 1024


class ProtocolError(ValueError):
    """A frame that is not a well-formed message of this protocol version."""


# -- field checks ------------------------------------------------------------------
def _field(header: dict[str, object], name: str, kind: type | tuple[type, ...]) -> object:
    if name not in header:
        raise ProtocolError(f"field {name!r} is missing")
    value = header[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError(f"field {name!r} is {type(value).__name__}, not {kind}")
    return value


def _int(header: dict[str, object], name: str) -> int:
    return int(_field(header, name, int))  # type: ignore[call-overload]


def _float(header: dict[str, object], name: str) -> float:
    value = float(_field(header, name, (int, float)))  # type: ignore[arg-type]
    if not math.isfinite(value):
        raise ProtocolError(f"field {name!r} is not finite")
    return value


def _str(header: dict[str, object], name: str) -> str:
    return str(_field(header, name, str))


def _object(header: dict[str, object], name: str) -> dict[str, object] | None:
    value = header.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError(f"field {name!r} is {type(value).__name__}, not an object")
    return value


# -- messages ----------------------------------------------------------------------
def _str_map(header: dict[str, object], name: str) -> dict[str, str]:
    value = _object(header, name)
    if value is None:
        raise ProtocolError(f"field {name!r} is missing")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ProtocolError(f"field {name!r} is not a map of strings")
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class Ready:
    """Worker → parent: its runtimes are imported; the worker waits for its job.

    ``runtimes`` maps each runtime the worker imported to its version
    (``{"onnxruntime": "1.32.0", "litert": "2.3.0"}``).
    """

    KIND: ClassVar[int] = 1
    pid: int
    vm_data_bytes: int  # the data segment after the imports (RLIMIT_DATA starts from it)
    runtimes: dict[str, str]

    def _header(self) -> dict[str, object]:
        return {"pid": self.pid, "vm_data_bytes": self.vm_data_bytes,
                "runtimes": dict(self.runtimes)}  # fmt: skip

    def _blob(self) -> bytes:
        return b""

    @classmethod
    def _decode(cls, header: dict[str, object], blob: bytes) -> Ready:
        return cls(_int(header, "pid"), _int(header, "vm_data_bytes"),
                   _str_map(header, "runtimes"))  # fmt: skip


@dataclass(frozen=True)
class ReferenceJob:
    """The paired method's reference: where it is, and its calibration if one exists."""

    path: str
    name: str
    sha256: str
    calibrated_ms: float | None  # None: the worker calibrates (``calibration_runs`` runs)
    calibrated_at: float | None
    calibration_runs: int
    max_calibration_cv: float  # a noisier calibration is used once, not returned for keeping

    def _header(self) -> dict[str, object]:
        return {"path": self.path, "name": self.name, "sha256": self.sha256,
                "calibrated_ms": self.calibrated_ms, "calibrated_at": self.calibrated_at,
                "calibration_runs": self.calibration_runs,
                "max_calibration_cv": self.max_calibration_cv}  # fmt: skip

    @classmethod
    def _decode(cls, header: dict[str, object]) -> ReferenceJob:
        calibrated = header.get("calibrated_ms") is not None
        return cls(
            path=_str(header, "path"),
            name=_str(header, "name"),
            sha256=_str(header, "sha256"),
            calibrated_ms=_float(header, "calibrated_ms") if calibrated else None,
            calibrated_at=_float(header, "calibrated_at") if calibrated else None,
            calibration_runs=_int(header, "calibration_runs"),
            max_calibration_cv=_float(header, "max_calibration_cv"),
        )


@dataclass(frozen=True)
class Job:
    """Parent → worker: one benchmark; ``settings``: a serialized, resolved BenchmarkSettings.

    ``model_sha256`` and ``engine_cache_dir`` (the agent's TensorRT engine
    cache; empty: none) key cached engines; ``reference`` is set for the
    paired method.
    """

    KIND: ClassVar[int] = 2
    model_path: str
    settings: bytes
    reference: ReferenceJob | None
    model_sha256: str = ""
    engine_cache_dir: str = ""

    def _header(self) -> dict[str, object]:
        ref = self.reference._header() if self.reference is not None else None
        return {"model_path": self.model_path, "reference": ref,
                "model_sha256": self.model_sha256,
                "engine_cache_dir": self.engine_cache_dir}  # fmt: skip

    def _blob(self) -> bytes:
        return self.settings

    @classmethod
    def _decode(cls, header: dict[str, object], blob: bytes) -> Job:
        ref = _object(header, "reference")
        return cls(_str(header, "model_path"), blob,
                   ReferenceJob._decode(ref) if ref is not None else None,
                   _str(header, "model_sha256"), _str(header, "engine_cache_dir"))  # fmt: skip


@dataclass(frozen=True)
class Result:
    """Worker → parent: the measurement.

    ``result`` is a serialized BenchmarkResult (service-owned fields empty);
    ``calibration`` is the reference calibration the worker measured and
    found steady enough to keep (None otherwise); ``elapsed_s`` is the
    worker's own time from reading the job to sending this, by which the
    parent judges the timeout when it reads the answer late (a paused agent).
    """

    KIND: ClassVar[int] = 3
    result: bytes
    calibration: Calibration | None
    elapsed_s: float

    def _header(self) -> dict[str, object]:
        cal = self.calibration
        calibration = None if cal is None else {
            "latency_ms": cal.latency_ms, "calibrated_at": cal.calibrated_at, "runs": cal.runs
        }  # fmt: skip
        return {"calibration": calibration, "elapsed_s": self.elapsed_s}

    def _blob(self) -> bytes:
        return self.result

    @classmethod
    def _decode(cls, header: dict[str, object], blob: bytes) -> Result:
        cal = _object(header, "calibration")
        calibration = None
        if cal is not None:
            try:
                calibration = Calibration(
                    _float(cal, "latency_ms"), _float(cal, "calibrated_at"), _int(cal, "runs")
                )
            except ValueError as exc:  # Calibration checks its own values
                raise ProtocolError(f"bad calibration: {exc}") from None
        return cls(blob, calibration, _float(header, "elapsed_s"))


@dataclass(frozen=True)
class Failure:
    """Worker → parent: the job failed; ``reason`` names a class in :data:`REASONS`."""

    KIND: ClassVar[int] = 4
    reason: str
    message: str
    elapsed_s: float

    def _header(self) -> dict[str, object]:
        return {"reason": self.reason, "message": self.message, "elapsed_s": self.elapsed_s}

    def _blob(self) -> bytes:
        return b""

    @classmethod
    def _decode(cls, header: dict[str, object], blob: bytes) -> Failure:
        reason = _str(header, "reason")
        if reason not in REASONS:
            raise ProtocolError(f"unknown failure reason {echo(reason)}")
        return cls(reason, _str(header, "message"), _float(header, "elapsed_s"))


@dataclass(frozen=True)
class Accepted:
    """Worker → parent: the job was read and is about to run (no model work yet)."""

    KIND: ClassVar[int] = 5

    def _header(self) -> dict[str, object]:
        return {}

    def _blob(self) -> bytes:
        return b""

    @classmethod
    def _decode(cls, header: dict[str, object], blob: bytes) -> Accepted:
        return cls()


Message = Ready | Job | Accepted | Result | Failure
_KINDS: dict[int, type[Ready] | type[Job] | type[Accepted] | type[Result] | type[Failure]] = {
    cls.KIND: cls for cls in (Ready, Job, Accepted, Result, Failure)
}


# -- frames ------------------------------------------------------------------------
def encode(message: Message) -> bytes:
    """One frame holding ``message``."""
    header = json.dumps(message._header(), allow_nan=False).encode()
    blob = message._blob()
    return _PREFIX.pack(_MAGIC, VERSION, message.KIND, len(header), len(blob)) + header + blob


def _frame_size(prefix: bytes, max_bytes: int) -> tuple[int, int, int]:
    """(kind, header_len, blob_len) from a frame prefix; ProtocolError if it is not ours."""
    magic, version, kind, header_len, blob_len = _PREFIX.unpack(prefix)
    if magic != _MAGIC:
        raise ProtocolError(f"not a worker protocol frame (starts with {prefix[:3]!r})")
    if version != VERSION:
        raise ProtocolError(f"worker protocol version {version}, expected {VERSION}")
    if kind not in _KINDS:
        raise ProtocolError(f"unknown message kind {kind}")
    if header_len + blob_len > max_bytes:
        raise ProtocolError(
            f"a {header_len + blob_len}-byte message, over the cap of {max_bytes} bytes"
        )
    return kind, header_len, blob_len


def _decode(kind: int, header_bytes: bytes, blob: bytes) -> Message:
    try:
        header = json.loads(header_bytes)
    except ValueError as exc:
        raise ProtocolError(f"unreadable message header: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("the message header is not an object")
    return _KINDS[kind]._decode(header, blob)


class FrameReader:
    """Incremental decoder for a non-blocking reader: :meth:`feed` bytes, take messages."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        """Whether part of a frame is buffered (its sender has started writing it)."""
        return bool(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= PREFIX_BYTES:
            _frame_size(bytes(self._buf[:PREFIX_BYTES]), self._max)  # refuse oversize early

    def next_message(self) -> Message | None:
        """The next complete message, or None until more bytes arrive. Raises ProtocolError."""
        if len(self._buf) < PREFIX_BYTES:
            return None
        kind, header_len, blob_len = _frame_size(bytes(self._buf[:PREFIX_BYTES]), self._max)
        end = PREFIX_BYTES + header_len + blob_len
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[:end])
        del self._buf[:end]
        header_end = PREFIX_BYTES + header_len
        return _decode(kind, frame[PREFIX_BYTES:header_end], frame[header_end:])


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_message(stream: BinaryIO, max_bytes: int) -> Message | None:
    """Blocking read of one message; None on EOF before any byte. Raises ProtocolError."""
    prefix = _read_exactly(stream, PREFIX_BYTES)
    if not prefix:
        return None
    if len(prefix) < PREFIX_BYTES:
        raise ProtocolError(f"the stream ended inside a frame prefix ({len(prefix)} bytes)")
    kind, header_len, blob_len = _frame_size(prefix, max_bytes)
    body = _read_exactly(stream, header_len + blob_len)
    if len(body) < header_len + blob_len:
        raise ProtocolError(f"the stream ended after {len(body)} of {header_len + blob_len} bytes")
    return _decode(kind, body[:header_len], body[header_len:])


def write_message(fd: int, message: Message) -> None:
    """Write one frame to file descriptor ``fd`` (blocking until all of it is written)."""
    view = memoryview(encode(message))
    while view:
        view = view[os.write(fd, view) :]
