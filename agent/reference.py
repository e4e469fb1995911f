"""The paired method's reference model and its persisted calibrations.

The agent carries one fixed reference network in each format it runs:
``assets/reference.onnx`` (``scripts/make_reference_model.py``) for
onnxruntime and ``assets/reference.tflite`` (the same network and weights,
``scripts/make_reference_tflite.py``) for LiteRT. A paired benchmark alternates
candidate and reference runs and reports ``ratio_median × calibrated_ms``,
where ``calibrated_ms`` is the reference's median latency measured *once* per
:class:`CalibrationKey` and then kept in a :class:`CalibrationStore`, so that
paired results stay comparable across calls and agent restarts.

The store is a small JSON file written atomically (temp file, fsync, rename).
A store is safe to share between threads of one process; two processes may
share a file too (a write re-reads the file and keeps the other's entries),
though the last writer of the same key wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

REFERENCE_NAME = "fleetnas-reference-v1"
# Calibration: the median of this many reference runs (after warm-up).
CALIBRATION_RUNS = 200
# A calibration whose runs are noisier than this (robust cv: 1.4826 × MAD / median)
# is used for the one result but not kept; the next paired benchmark recalibrates.
# Measured on a busy 2-core VM: 1.8-4.6 % (load average ~3).
MAX_CALIBRATION_CV = 0.10
_STORE_VERSION = 1

log = logging.getLogger(__name__)


# The reference asset of each runtime (``fleetnas.agent/assets``).
REFERENCE_ASSETS = {"onnxruntime": "reference.onnx", "litert": "reference.tflite"}


def default_reference_path(runtime: str = "onnxruntime") -> Path:
    """Path of ``runtime``'s reference model, shipped as package data. KeyError for a
    runtime without one."""
    return Path(str(resources.files("fleetnas.agent") / "assets" / REFERENCE_ASSETS[runtime]))


def sha256_file(path: Path) -> str:
    """Lowercase hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CalibrationKey:
    """What a reference latency depends on; one calibration per distinct key.

    The runtime and its version are part of the key: an upgrade changes
    kernel speeds, so the reference is recalibrated rather than silently
    mixed. onnxruntime keys keep their first text form (``as_string``), so
    calibrations stored before LiteRT existed still match.
    """

    reference_sha256: str
    intra_op_threads: int
    inter_op_threads: int
    providers: tuple[str, ...]
    graph_optimization: int
    runtime_version: str
    runtime: str = "onnxruntime"

    @classmethod
    def of(
        cls,
        reference_sha256: str,
        *,
        intra_op_threads: int,
        inter_op_threads: int,
        providers: Sequence[str],
        graph_optimization: int,
        runtime_version: str,
        runtime: str = "onnxruntime",
    ) -> CalibrationKey:
        return cls(
            reference_sha256,
            int(intra_op_threads),
            int(inter_op_threads),
            tuple(providers),
            int(graph_optimization),
            runtime_version,
            runtime,
        )

    def as_string(self) -> str:
        """Stable text form, used as the JSON key."""
        fields = asdict(self) | {"providers": list(self.providers)}
        del fields["runtime_version"], fields["runtime"]
        if self.runtime == "onnxruntime":
            fields["onnxruntime_version"] = self.runtime_version  # the first form of the key
        else:
            fields |= {"runtime": self.runtime, "runtime_version": self.runtime_version}
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class Calibration:
    """A calibrated reference latency: median of ``runs`` runs, measured at ``calibrated_at``."""

    latency_ms: float
    calibrated_at: float  # unix seconds
    runs: int

    def __post_init__(self) -> None:
        if not self.latency_ms > 0:
            raise ValueError(f"calibrated latency must be positive, got {self.latency_ms}")


class CalibrationStore:
    """Persisted reference calibrations, one JSON file at ``path``.

    ``get`` returns None when a key has no calibration. A file that cannot be
    parsed is moved aside (``<path>.corrupt-<time>``, logged) and treated as
    empty: the next paired benchmark recalibrates.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def get(self, key: CalibrationKey) -> Calibration | None:
        with self._lock:
            entry = self._read().get(key.as_string())
        if entry is None:
            return None
        try:
            return Calibration(
                float(entry["latency_ms"]), float(entry["calibrated_at"]), int(entry["runs"])
            )
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed calibration entry in %s", self.path)
            return None

    def put(self, key: CalibrationKey, calibration: Calibration) -> None:
        """Persist ``calibration`` under ``key`` (atomic: readers see old or new, never half)."""
        with self._lock:
            entries = self._read()
            entries[key.as_string()] = asdict(calibration)
            self._write(entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._read())

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            if data.get("version") != _STORE_VERSION or not isinstance(data["entries"], dict):
                raise ValueError(f"unknown calibration file version {data.get('version')!r}")
            return dict(data["entries"])
        except (ValueError, KeyError, AttributeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("calibration file %s unreadable (%s); moved to %s", self.path, exc, aside)
            os.replace(self.path, aside)
            return {}

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": _STORE_VERSION, "entries": entries}, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
