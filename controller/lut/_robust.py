"""Robust statistics of a measurement's raw samples: the one place a LUT entry's value
(and a kernel LUT's, ``controller/predict``) is computed from samples.

A block's samples carry noise that is one-sided on a shared or busy host: a
run is slowed by an interrupt, a migration or a neighbour, never sped up. So
the statistics offered are

* ``median``: the agent's own ``median_ms`` (linear interpolation, as
  :func:`fleetnas.agent.stats.percentile`): what a plain measurement's
  ``latency_ms`` already is;
* ``min``: the least disturbed run;
* ``trimmed_mean``: the mean of the samples left after cutting
  :data:`TRIM_PROPORTION` of them from each end (a symmetric trim keeps it
  comparable to the mean on a quiet host);
* ``p10``: the 10th percentile (as the agent interpolates), the shared-host
  protocol's default (``controller/predict/_protocol.py``): low, so the runs
  that interference slowed do not count, but not the single extreme ``min``.

A LUT stores the statistic its entries were computed with (``luts.statistic``,
:data:`DEFAULT_LUT_STATISTIC` for a new LUT); :func:`entry_latency` is an
entry's value from its measurement. The CLI spells ``trimmed_mean`` as
``trimmed-mean`` (:func:`cli_name`, :func:`from_cli_name`).

:func:`sample_cv` is the noise figure a re-measure decision reads. Which
statistic predicts end-to-end latency best on a device is a bench_lut
question; nothing here picks one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from fleetnas.agent.stats import mean_std_cv, percentile
from fleetnas.controller.costdb import Measurement

#: the share of samples a trimmed mean drops from each end
TRIM_PROPORTION = 0.1


def _checked(samples_ms: Sequence[float]) -> list[float]:
    values = [float(v) for v in samples_ms]
    if not values:
        raise ValueError("a robust statistic needs at least one sample")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("latency samples must be finite numbers")
    return values


def _median(values: list[float]) -> float:
    return percentile(sorted(values), 50)


def _trimmed_mean(values: list[float]) -> float:
    ordered = sorted(values)
    cut = int(len(ordered) * TRIM_PROPORTION)
    kept = ordered[cut:len(ordered) - cut]
    return math.fsum(kept) / len(kept)


#: statistic name -> function of the checked samples
STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "median": _median,
    "min": min,
    "trimmed_mean": _trimmed_mean,
    "p10": lambda values: percentile(sorted(values), 10.0),
}
#: the statistic of a LUT built without one: the measurement's own ``latency_ms`` (as
#: LUTs were before the choice existed; which one scores best is bench_lut's question)
DEFAULT_LUT_STATISTIC = "median"


def cli_name(statistic: str) -> str:
    """How the CLI spells a statistic (``trimmed-mean``)."""
    return statistic.replace("_", "-")


def from_cli_name(name: str) -> str:
    """The :data:`STATISTICS` key of a CLI spelling (``trimmed-mean`` -> ``trimmed_mean``)."""
    return name.replace("-", "_")


def robust_latency(samples_ms: Sequence[float], statistic: str = "median") -> float:
    """``statistic`` (a key of :data:`STATISTICS`) of the raw samples (ms).

    Raises ValueError for no samples, a non-finite sample, or an unknown
    statistic (the message lists the known ones).
    """
    try:
        function = STATISTICS[statistic]
    except KeyError:
        raise ValueError(
            f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}"
        ) from None
    return function(_checked(samples_ms))


def sample_cv(samples_ms: Sequence[float]) -> float:
    """The samples' coefficient of variation (population std / mean, as the agent's ``cv``)."""
    return mean_std_cv(_checked(samples_ms))[2]


def measurement_samples(m: Measurement) -> list[float]:
    """A measurement's timed runs (ms): its samples, or for a paired measurement the
    per-pair ratios times the reference's calibrated latency (so slow host drift cancels)."""
    if m.paired is not None and m.paired.get("ratios"):
        calibrated = float(m.paired["reference_calibrated_ms"])
        return [float(r) * calibrated for r in m.paired["ratios"]]
    return list(m.samples_ms)


def entry_latency(m: Measurement, statistic: str) -> float:
    """A LUT entry's latency (ms) from its measurement: ``median`` is the measurement's own
    ``latency_ms`` (what an entry was before statistics could be chosen); the others are
    computed from :func:`measurement_samples`. Raises ValueError for an unknown statistic,
    or a measurement without samples when one is needed."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
    if statistic == "median":
        return float(m.latency_ms)
    return robust_latency(measurement_samples(m), statistic)
