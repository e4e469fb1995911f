"""Kernel LUTs: measure each distinct executed kernel once, predict a net as their sum.

:func:`build_kernel_lut` does, in order:

1. **Archs.** The archs whose kernels the LUT must hold: the caller's, or a
   *cover* of the space (:func:`cover_archs`: seeded random archs, each kept
   only if it brings a block no earlier one had, until every block of
   ``space.all_blocks()`` is in one). A kernel depends on the block it comes
   from and its shapes, so covering the blocks covers the kernels; a kernel
   that only appears in some context (a layout change between two blocks)
   may still be missing: :meth:`KernelLut.missing` says so before a
   prediction, and :class:`MissingKernel` names it.
2. **Extract** each arch's kernels (:func:`._kernels.extract_kernels`, at the
   request's optimisation level, cached on disk by model hash, level and the
   controller's onnxruntime version and machine).
3. **Build** a standalone model per distinct kernel (seeded weights: the
   bytes depend on the key alone), stored under ``cache_dir/kernels`` and
   recorded in the cost DB's ``models`` with ``arch = "kernel:" + key``; and
   check (``verify``) that onnxruntime runs each exactly as the one node.
4. **Measure** every kernel and the *null model* (one Identity of one float:
   what every standalone run pays besides its kernel) with the shared-host
   protocol (:mod:`._protocol`), so the kernel LUT holds on a noisy host too.

Prediction: ``raw_sum(net) = sum over executed nodes of (entry - null)``:
each standalone measurement paid the per-run fixed cost once, the network
pays it once in all. ``predict(net) = a * raw_sum + b`` with ``a, b`` fitted
on a few whole-network measurements (:func:`fleetnas.controller.lut.fit_calibration`,
relative least squares); ``b`` is the network's own per-run overhead.

The LUT is a value (:class:`KernelLut`, JSON via ``to_dict``/``from_dict``);
its measurements are in the cost DB, so building it again with
``reuse_since=0`` measures nothing that is already there.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.atomic_files import write_bytes_atomic
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import Calibration, fit_calibration
from fleetnas.controller.predict._kernels import (
    LEVEL_NAMES,
    Kernel,
    NetKernels,
    check_kernel_model,
    environment,
    extract_kernels,
    kernel_model,
    null_model,
)
from fleetnas.controller.predict._protocol import (
    Progress,
    Protocol,
    ProtocolReport,
    measure_robust,
)
from fleetnas.controller.scheduler import ModelRef, Scheduler
from fleetnas.controller.spaces import Arch, SearchSpace

KERNEL_ARCH_PREFIX = "kernel:"
#: the LUT entry of the null model
NULL_KEY = "fleetnas:null"
_EXTRACT_FORMAT = 1


def _output_elements(key: str) -> int:
    """Elements of a kernel key's outputs (``out=1x64x8x8,1x8`` -> 4104; scalar -> 1)."""
    text = key.rsplit("|out=", 1)[-1] if "|out=" in key else ""
    total = 0
    for spec in filter(None, text.split(",")):
        dims = spec.split("=", 1)[0].rsplit(":", 1)[-1]
        count = 1
        for d in ("" if dims == "scalar" else dims).split("x"):
            if d.isdigit():
                count *= int(d)
        total += count
    return max(total, 1)


class MissingKernel(KeyError):
    """A net runs a kernel that the kernel LUT has no entry for."""

    def __init__(self, key: str, device: str) -> None:
        super().__init__(key)
        self.key = key
        self.device = device

    def __str__(self) -> str:
        return (
            f"kernel {self.key} is not in the kernel LUT of {self.device}; build the LUT "
            "with the archs you predict (build_kernel_lut(..., archs=...)) to measure it"
        )


@dataclass(frozen=True)
class KernelEntry:
    """One measured kernel: the protocol's latency (ms) and its relative spread."""

    latency_ms: float
    spread: float
    model_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "spread": self.spread,
                "model_sha256": self.model_sha256}


@dataclass(frozen=True)
class KernelLut:
    """Kernel latencies of one device and request (see the module docstring).

    ``level`` is the optimisation level the kernels were extracted at;
    ``onnxruntime``/``machine`` where they were extracted. ``calibration`` is
    ``None`` until :meth:`calibrated`.
    """

    device: str
    settings_hash: str | None
    level: str
    onnxruntime: str
    machine: str
    entries: Mapping[str, KernelEntry]
    calibration: Calibration | None = None

    @property
    def level_value(self) -> int:
        """The ``GraphOptimization`` value of :attr:`level` (what the kernels were extracted at)."""
        return next(value for value, name in LEVEL_NAMES.items() if name == self.level)

    @property
    def null_ms(self) -> float:
        return self.entries[NULL_KEY].latency_ms

    def missing(self, net: NetKernels) -> list[str]:
        """Keys of ``net``'s kernels with no entry (empty when it can be predicted)."""
        return sorted(set(net.counts()) - set(self.entries))

    def raw_sum(self, net: NetKernels) -> float:
        """Sum over executed nodes of (entry - null), ms. Raises MissingKernel."""
        missing = self.missing(net)
        if missing:
            raise MissingKernel(missing[0], self.device)
        return self.estimated_sum(net)[0]

    def estimated_sum(self, net: NetKernels) -> tuple[float, float]:
        """``(raw sum, the part of it estimated)``, ms: as :meth:`raw_sum`, but a kernel
        with no entry counts as :meth:`estimate_missing` instead of raising."""
        null = self.null_ms
        total = estimated = 0.0
        for key, count in net.counts().items():
            entry = self.entries.get(key)
            if entry is None:
                value = count * self.estimate_missing(key)
                estimated += value
            else:
                value = count * max(entry.latency_ms - null, 0.0)
            total += value
        return total, estimated

    def estimate_missing(self, key: str) -> float:
        """A stand-in (ms, null subtracted) for a kernel with no entry: its output's element
        count times the median ms per output element of the measured kernels of the same
        op and opset (of every kernel when none has them). A rough figure: a search that
        uses it says how much of a prediction it made up (:class:`KernelPredictor`)."""
        op = key.split("|", 1)[0]
        per_element = self._per_element.get(op, self._per_element[""])
        return per_element * _output_elements(key)

    @cached_property
    def _per_element(self) -> dict[str, float]:
        """``op@opset`` (and ``""``: every kernel) -> median ms per output element."""
        null = self.null_ms
        by_op: dict[str, list[float]] = {"": []}
        for key, entry in self.entries.items():
            if key == NULL_KEY:
                continue
            ratio = max(entry.latency_ms - null, 0.0) / _output_elements(key)
            by_op.setdefault(key.split("|", 1)[0], []).append(ratio)
            by_op[""].append(ratio)
        return {op: statistics.median(v) if v else 0.0 for op, v in by_op.items()}

    def predict(self, net: NetKernels) -> float:
        """The calibrated prediction (ms); the raw sum while uncalibrated."""
        raw = self.raw_sum(net)
        return raw if self.calibration is None else self.calibration.apply(raw)

    def calibrated(self, nets: Sequence[NetKernels], measured_ms: Sequence[float],
                   labels: Sequence[str] = ()) -> KernelLut:
        """A copy calibrated on whole-net measurements (at least 5; CalibrationError)."""
        sums = [self.raw_sum(net) for net in nets]
        return replace(self, calibration=fit_calibration(sums, measured_ms, labels))

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "settings_hash": self.settings_hash, "level": self.level,
            "onnxruntime": self.onnxruntime, "machine": self.machine,
            "entries": {k: e.to_dict() for k, e in sorted(self.entries.items())},
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelLut:
        calibration = data.get("calibration")
        return cls(
            str(data["device"]), data.get("settings_hash"), str(data["level"]),
            str(data["onnxruntime"]), str(data["machine"]),
            {k: KernelEntry(float(e["latency_ms"]), float(e["spread"]), str(e["model_sha256"]))
             for k, e in data["entries"].items()},
            None if calibration is None else Calibration.from_dict(calibration),
        )  # fmt: skip


# -- archs and their kernels ---------------------------------------------------------------


def cover_archs(space: SearchSpace, *, seed: int = 0, max_samples: int = 20_000) -> list[Arch]:
    """Seeded random archs that together contain every block of the space (module
    docstring). Stops after ``max_samples`` draws even if some block is still uncovered."""
    needed = {b.key for b in space.all_blocks()}
    rng = random.Random(f"fleetnas.predict.cover/{seed}")
    chosen: list[Arch] = []
    for _ in range(max_samples):
        if not needed:
            break
        arch = space.sample(rng)
        new = {b.key for b in space.blocks(arch)} & needed
        if new:
            chosen.append(arch)
            needed -= new
    return chosen


class KernelCache:
    """Extracted kernels on disk, one JSON file per (model, level, onnxruntime, machine)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, model_sha256: str, level: int) -> Path:
        version, machine = environment()
        text = f"{_EXTRACT_FORMAT}|{model_sha256}|{LEVEL_NAMES[level]}|{version}|{machine}"
        return self.directory / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"

    def kernels(self, model: bytes, level: int) -> NetKernels:
        path = self._path(hashlib.sha256(model).hexdigest(), level)
        try:
            return NetKernels.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        net = extract_kernels(model, level)
        write_bytes_atomic(path, json.dumps(net.to_dict()).encode())
        return net

    def model_path(self, kernel: Kernel) -> Path:
        """The standalone model of ``kernel`` on disk (written on first use)."""
        path = self.directory / "models" / f"{kernel.key_hash}.onnx"
        if not path.exists():
            write_bytes_atomic(path, kernel_model(kernel))
        return path


def arch_kernels(
    space: SearchSpace, archs: Sequence[Arch], level: int, *,
    cache_dir: str | Path | None = None, on_item: Callable[[str], None] | None = None,
) -> dict[str, NetKernels]:
    """Encoding -> the arch's kernels at ``level`` (exported with the ONNX export cache)."""
    from fleetnas.controller.export import default_cache_dir, export_arch

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = KernelCache(root / "kernels")
    out = {}
    for arch in archs:
        exported = export_arch(space, arch, cache_dir=cache_dir)
        encoding = space.encode(arch)
        out[encoding] = cache.kernels(exported.onnx_bytes, level)
        if on_item is not None:
            on_item(encoding)
    return out


# -- build -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelLutBuild:
    """What a build did: the LUT, how many archs and kernels, the protocol's report, the
    kernels onnxruntime would not run as one node (key -> what it runs), the time spent."""

    lut: KernelLut
    archs: int
    kernels: int
    protocol: ProtocolReport
    rewritten: dict[str, str] = field(default_factory=dict)
    extract_s: float = 0.0
    measure_s: float = 0.0

    @property
    def failed(self) -> dict[str, str]:
        return self.protocol.failed


def build_kernel_lut(
    space: SearchSpace,
    device: str,
    request: agent_pb2.BenchmarkSettings,
    *,
    db: CostDB,
    scheduler: Scheduler,
    archs: Sequence[Arch] | None = None,
    protocol: Protocol | None = None,
    cache_dir: str | Path | None = None,
    reuse_since: float | None = 0.0,
    verify: bool = True,
    on_progress: Progress | None = None,
) -> KernelLutBuild:
    """Build the kernel LUT of ``space`` (or of ``archs``) on ``device``; module docstring.

    ``request`` is the device's benchmark request; its ``graph_optimization``
    (unset: ``all``) is the level kernels are extracted at. ``on_progress``
    gets phases ``extract``, ``models`` and ``measure``. Failed kernels are
    in ``failed`` and have no entry. Raises UnknownDevice before any work.
    """
    scheduler.fleet.get(device)
    level = request.graph_optimization or agent_pb2.GRAPH_OPTIMIZATION_ALL
    chosen = list(archs) if archs is not None else cover_archs(space)
    started = time.monotonic()
    done = [0]

    def extracted(_: str) -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress("extract", done[0], len(chosen))

    nets = arch_kernels(space, chosen, level, cache_dir=cache_dir, on_item=extracted)
    kernels: dict[str, Kernel] = {}
    for net in nets.values():
        for key, kernel in net.distinct().items():
            kernels.setdefault(key, kernel)
    refs, rewritten = _kernel_refs(kernels, level, db, cache_dir, verify, on_progress)
    extract_s = time.monotonic() - started
    report = measure_robust(
        refs, device, request, db=db, scheduler=scheduler, protocol=protocol,
        reuse_since=reuse_since, on_progress=on_progress,
    )  # fmt: skip
    version, machine = environment()
    entries = {tag: KernelEntry(r.latency_ms, r.spread, r.model_sha256)
               for tag, r in report.results.items()}
    lut = KernelLut(device, report.settings_hash, LEVEL_NAMES[level], version, machine, entries)
    return KernelLutBuild(lut, len(chosen), len(kernels), report, rewritten, extract_s,
                          time.monotonic() - started - extract_s)


def _kernel_refs(
    kernels: Mapping[str, Kernel], level: int, db: CostDB, cache_dir: str | Path | None,
    verify: bool, on_progress: Progress | None,
) -> tuple[dict[str, ModelRef], dict[str, str]]:
    """Tag -> model of every kernel plus the null model, recorded in the DB; and the
    kernels that onnxruntime would not run as their one node."""
    from fleetnas.controller.export import default_cache_dir

    cache = KernelCache((Path(cache_dir) if cache_dir is not None else default_cache_dir())
                        / "kernels")
    refs = {NULL_KEY: ModelRef.from_bytes(null_model())}
    rewritten: dict[str, str] = {}
    for i, (key, kernel) in enumerate(kernels.items(), start=1):
        ref = ModelRef.from_path(cache.model_path(kernel))
        known = db.get_model(ref.sha256)
        if known is None or known.arch != KERNEL_ARCH_PREFIX + key:
            db.record_model(ref.sha256, ref.size_bytes, arch=KERNEL_ARCH_PREFIX + key)
        if verify:
            instead = check_kernel_model(kernel, ref.read_bytes(), level)
            if instead is not None:
                rewritten[key] = instead
        refs[key] = ref
        if on_progress is not None:
            on_progress("models", i, len(kernels))
    null = refs[NULL_KEY]
    db.record_model(null.sha256, null.size_bytes, arch=KERNEL_ARCH_PREFIX + NULL_KEY)
    return refs, rewritten


class KernelPredictor:
    """Predictions for the archs of ``space`` from a kernel LUT (extraction cached on disk).

    Extracting an arch's kernels costs an export and two onnxruntime sessions
    (about a second) the first time; then a file read.
    """

    def __init__(self, space: SearchSpace, lut: KernelLut, *,
                 cache_dir: str | Path | None = None) -> None:
        self.space = space
        self.lut = lut
        self._level = lut.level_value
        self._cache_dir = cache_dir

    def kernels(self, arch: Arch) -> NetKernels:
        encoding = self.space.encode(arch)
        return arch_kernels(self.space, [arch], self._level, cache_dir=self._cache_dir)[encoding]

    def raw_sum(self, arch: Arch) -> float:
        return self.lut.raw_sum(self.kernels(arch))

    def predict(self, arch: Arch) -> float:
        return self.lut.predict(self.kernels(arch))

    @property
    def prior_rmspe(self) -> float:
        """The calibration's leave-one-out RMSPE (percent; NaN when uncalibrated or unknown)."""
        calibration = self.lut.calibration
        return math.nan if calibration is None else calibration.loo_rmspe

    def predict_many(self, archs: Sequence[Arch]) -> list[float]:
        """The calibrated prediction (ms) per arch; a kernel without an entry counts as
        :meth:`KernelLut.estimate_missing` (:meth:`estimated_shares` says how much)."""
        return [value for value, _ in self._estimated(archs)]

    def estimated_shares(self, archs: Sequence[Arch]) -> list[float]:
        """Per arch, the share of its raw kernel sum that stood in for missing kernels
        (0: every kernel measured)."""
        return [share for _, share in self._estimated(archs)]

    def _estimated(self, archs: Sequence[Arch]) -> list[tuple[float, float]]:
        nets = arch_kernels(self.space, archs, self._level, cache_dir=self._cache_dir)
        out = []
        calibration = self.lut.calibration
        for arch in archs:
            raw, estimated = self.lut.estimated_sum(nets[self.space.encode(arch)])
            value = raw if calibration is None else calibration.apply(raw)
            out.append((value, estimated / raw if raw > 0 else 0.0))
        return out
