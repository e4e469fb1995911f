"""Compare accuracy specs (``naswot``, ``supernet:digits,epochs=20``...) against a reference spec.

:func:`compare_accuracy_specs` is what ``fleetnas proxies`` and
``bench/bench_accuracy.py`` run: it checks every spec first (a typo fails
before a supernet trains), builds each estimator with :func:`make_estimator`,
does each one's one-off work (:meth:`AccuracyEstimator.prepare`: a supernet
is trained or loaded from ``workdir/supernets``), timed per spec, then scores
the archs with :func:`fleetnas.controller.accuracy.compare_estimators` (the
one scoring loop: the reference once, then each spec). :func:`train_spec`
writes the ``train:DATA,...`` spec of a short-training reference.

Imports torch when called, not when imported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetnas.controller.driver._accuracy import check_accuracy_spec, make_estimator

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import Comparison, SetupProgress
    from fleetnas.controller.spaces import SearchSpace


@dataclass(frozen=True)
class SpecComparison:
    """The comparison, the lines each estimator's one-off work printed, and its seconds per spec
    (``prepare_seconds``; the reference's under ``reference_spec``)."""

    comparison: Comparison
    notes: tuple[str, ...]
    prepare_seconds: Mapping[str, float]


def train_spec(data: str, *, epochs: int, seed: int = 0, max_train_samples: int | None = None,
               max_val_samples: int | None = None) -> str:
    """``train:DATA,epochs=N,seed=S[,max_train_samples=M][,max_val_samples=V]``."""
    spec = f"train:{data},epochs={epochs},seed={seed}"
    spec += f",max_train_samples={max_train_samples}" if max_train_samples else ""
    return spec + (f",max_val_samples={max_val_samples}" if max_val_samples else "")


def compare_accuracy_specs(
    space: SearchSpace,
    archs: Sequence[Any],
    specs: Sequence[str],
    reference_spec: str,
    *,
    reference_name: str = "short training",
    workdir: str | Path | None = None,
    progress: SetupProgress | None = None,
) -> SpecComparison:
    """Rank each of ``specs`` against ``reference_spec`` on ``archs`` (see the module docstring).

    ``workdir`` is where one-off work is kept (a supernet store under
    ``workdir/supernets``; default: the current folder); ``progress(task,
    done, total, detail)`` reports it and every score. Raises
    SearchConfigError for a bad spec (before any work), DatasetError,
    PluginError or an estimator's own error; ValueError for fewer than 2 archs.
    """
    from fleetnas.controller.accuracy import EstimatorSetup, compare_estimators

    for spec in (*specs, reference_spec):
        check_accuracy_spec(spec)
    setup = EstimatorSetup(None if workdir is None else Path(workdir), progress)
    built = {spec: make_estimator(spec) for spec in specs}
    reference = make_estimator(reference_spec)
    notes: list[str] = []
    seconds: dict[str, float] = {}
    for spec, estimator in (*built.items(), (reference_spec, reference)):
        started = time.monotonic()
        notes.extend(estimator.prepare(space, setup))
        seconds[spec] = time.monotonic() - started

    def on_score(name: str, done: int, total: int) -> None:
        if progress is not None:
            progress(name, done, total, "")

    comparison = compare_estimators(space, archs, built, reference,
                                    reference_name=reference_name, on_score=on_score)
    return SpecComparison(comparison, tuple(notes), seconds)
