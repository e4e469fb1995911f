"""The pipe protocol between the benchmark runner (parent) and one worker process.

Both directions carry newline-terminated JSON objects (one per line, UTF-8):

worker → parent (the worker's original stdout; fd 1 itself is pointed at
stderr so that native libraries printing to stdout cannot corrupt it):

* ``{"type": "ready", "pid": int, "vm_data_bytes": int}`` once onnxruntime
  and numpy are imported;
* then exactly one of
  ``{"type": "result", "result": <base64 BenchmarkResult>, "calibration": null | {...}}``
  or ``{"type": "error", "reason": <name>, "message": str}``, where ``reason``
  is the name of a class in :mod:`fleetnas.agent.errors` (see
  :data:`REASONS`).

parent → worker (stdin): exactly one job line, see :class:`Job`, then EOF.
An EOF before any job means "exit quietly" (a spare being discarded).

Only the agent's own runner talks to a worker; nothing here comes from the
wire: the model is a path into the agent's own cache.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass

# Error classes a worker may name (all in fleetnas.agent.errors).
REASONS = frozenset(
    {"ModelInvalid", "UnsupportedOperator", "InvalidSettings", "MemoryCapExceeded", "InternalError"}
)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_JOB_BYTES = 1024 * 1024


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


@dataclass(frozen=True)
class Job:
    """One benchmark for one worker. ``settings`` is a serialized, resolved BenchmarkSettings."""

    model_path: str
    settings: bytes
    reference: ReferenceJob | None

    def encode(self) -> bytes:
        data = asdict(self)
        data["settings"] = base64.b64encode(self.settings).decode("ascii")
        return json.dumps(data).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Job:
        data = json.loads(line)
        ref = data.get("reference")
        return cls(
            model_path=str(data["model_path"]),
            settings=base64.b64decode(data["settings"]),
            reference=ReferenceJob(**ref) if ref else None,
        )


def encode_message(message: dict[str, object]) -> bytes:
    """One protocol line."""
    return json.dumps(message).encode() + b"\n"


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return base64.b64decode(text)
