"""Score a fitted transfer on fresh archs of the new device (``lut transfer --eval M``).

The archs scored are ``m`` archs of their own seeded stream (purpose
:data:`EVAL_PURPOSE`), never one of the reference archs the transfer was
fitted on, measured on the new device by the same shared-host protocol and
request as the transfer's own measurements (so the ground truth is as
trustworthy as the training data, and a rerun reuses its rounds). A source
device that measured an eval arch contributes its measurement, as it would
for any arch a search asks about: that is knowledge of other devices, not of
the new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import Accuracy, accuracy, sample_archs
from fleetnas.controller.predict._protocol import Progress, Protocol, measure_robust
from fleetnas.controller.predict._transfer import TransferError, TransferResult
from fleetnas.controller.scheduler import ModelRef, Scheduler
from fleetnas.controller.spaces import SearchSpace

EVAL_PURPOSE = "transfer-eval"


@dataclass(frozen=True)
class TransferEval:
    """The transfer's accuracy on fresh archs: per arch (encoding -> (predicted, measured)
    ms), the figures, the archs that failed to measure, and the device time spent."""

    rows: dict[str, tuple[float, float]]
    accuracy: Accuracy
    failed: dict[str, str]
    device_s: float


def evaluate_transfer(
    result: TransferResult,
    db: CostDB,
    space: SearchSpace,
    device: str,
    m: int,
    *,
    scheduler: Scheduler,
    request: agent_pb2.BenchmarkSettings | None = None,
    protocol: Protocol | None = None,
    reuse_since: float | None = 0.0,
    seed: int = 0,
    on_progress: Progress | None = None,
) -> TransferEval:
    """Measure ``m`` fresh archs on ``device`` and score ``result``'s predictions on them.

    Raises TransferError when fewer than 2 of them could be measured (ValueError
    for ``m < 2``).
    """
    if m < 2:
        raise ValueError(f"--eval needs at least 2 archs, got {m}")
    archs = sample_archs(space, m, EVAL_PURPOSE, seed, exclude=sorted(result.measured))
    descriptors = result.predictor.descriptors
    refs: dict[str, ModelRef] = {}
    for arch in archs:
        exported = descriptors.model(arch)
        encoding = space.encode(arch)
        db.record_model(exported.sha256, len(exported.onnx_bytes), space=space.identity(),
                        arch=encoding, params=space.count_params(arch),
                        flops=space.count_flops(arch))
        refs[encoding] = ModelRef.from_bytes(exported.onnx_bytes)
    report = measure_robust(
        refs, device, request or agent_pb2.BenchmarkSettings(), db=db, scheduler=scheduler,
        protocol=protocol, reuse_since=reuse_since, on_progress=on_progress,
    )  # fmt: skip
    measured = {tag: r.latency_ms for tag, r in report.results.items()}
    if len(measured) < 2:
        raise TransferError(f"only {len(measured)} of {len(archs)} eval archs could be measured "
                            f"on {device}: {dict(list(report.failed.items())[:3])}")
    encodings = sorted(measured)
    predicted = result.predictor.predict_many([space.decode(e) for e in encodings])
    rows = {e: (p, measured[e]) for e, p in zip(encodings, predicted, strict=True)}
    return TransferEval(rows, accuracy(predicted, [measured[e] for e in encodings]),
                        dict(report.failed), report.device_s)
