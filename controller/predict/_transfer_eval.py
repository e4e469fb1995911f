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
from fleetnas.controller.predict._protocol import Progress, Protocol
from fleetnas.controller.predict._transfer import TransferResult, measure_archs
from fleetnas.controller.scheduler import Scheduler
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
    measured, report = measure_archs(db, space, device, archs, result.predictor.descriptors,
                                     scheduler=scheduler, request=request,
                                     protocol=protocol, reuse_since=reuse_since,
                                     on_progress=on_progress)
    encodings = sorted(measured)
    predicted = result.predictor.predict_many([space.decode(e) for e in encodings])
    rows = {e: (p, measured[e]) for e, p in zip(encodings, predicted, strict=True)}
    return TransferEval(rows, accuracy(predicted, [measured[e] for e in encodings]),
                        dict(report.failed), report.device_s)
