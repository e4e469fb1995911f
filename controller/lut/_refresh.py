"""Refresh a stale LUT: measure its entries again, all or the noisy ones, bounded.

:func:`refresh_lut` is ``fleetnas lut build --remeasure``. It picks the
entries to measure again:

* without ``max_cv``: every block of the space (the LUT is stale as a whole,
  e.g. ``lut check`` said so after a firmware or onnxruntime update);
* with ``max_cv``: the blocks whose entry's *noise* is over it, plus the blocks
  with no entry or whose measurement is not in this cost DB (an imported LUT:
  nothing says they are sound). An entry's noise (:func:`entry_noise`) is the
  CV of its measurement's timed runs and, for a paired measurement, also the
  reference's drift (how far the reference ran from its calibrated latency
  during the measurement): the larger of the two;

noisiest first (unknown noise first of all), at most ``max_blocks`` of them.
Those are measured afresh (never from the cache) with the LUT's own
settings; each entry then names its new measurement and is computed with the
LUT's statistic; the old measurements stay in the cost DB. The report keeps
every refreshed entry's value and noise before and after, and how many
entries were over ``max_cv`` before and after.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleetnas.controller.costdb import CostDB, Measurement, settings_from_dict
from fleetnas.controller.lut._build import BuildReport, build_lut, distinct_blocks
from fleetnas.controller.lut._errors import LutMismatch
from fleetnas.controller.lut._progress import ProgressCallback
from fleetnas.controller.lut._robust import measurement_samples, sample_cv
from fleetnas.controller.lut._store import LutEntry, LutInfo, LutStore
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import SearchSpace

if TYPE_CHECKING:
    from fleetnas.controller.compress import CalibrationSource


def entry_noise(m: Measurement) -> float:
    """The noise of a measurement as a share: its timed runs' CV, or for a paired one the
    larger of that and the reference's relative drift from its calibrated latency."""
    samples = measurement_samples(m)
    noise = sample_cv(samples) if samples else math.inf
    paired = m.paired or {}
    reference = paired.get("reference_samples_ms") or []
    calibrated = float(paired.get("reference_calibrated_ms") or 0.0)
    if reference and calibrated > 0:
        noise = max(noise, abs(statistics.median(float(v) for v in reference) / calibrated - 1))
    return noise


@dataclass(frozen=True)
class RefreshedEntry:
    """One block measured again: its entry's latency (ms) and noise before and after
    (``None``: no entry, or its measurement is not in this DB; after: it failed)."""

    block_key: str
    before_ms: float | None
    before_noise: float | None
    after_ms: float | None
    after_noise: float | None


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did. ``over_before`` / ``over_after`` count the LUT's entries over
    ``max_cv`` (``None`` without it); ``left`` is how many selected blocks the
    ``max_blocks`` bound left for a later run."""

    build: BuildReport
    entries: tuple[RefreshedEntry, ...]
    selected: int
    left: int
    over_before: int | None
    over_after: int | None


def _noise_of(db: CostDB, entries: dict[str, LutEntry]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, entry in entries.items():
        m = db.get_measurement(entry.measurement_uid or "")
        out[key] = None if m is None else entry_noise(m)
    return out


def _over(noise: dict[str, float | None], max_cv: float | None) -> int | None:
    if max_cv is None:
        return None
    return sum(1 for v in noise.values() if v is None or v > max_cv)


def refresh_lut(
    space: SearchSpace,
    lut: LutInfo,
    *,
    db: CostDB,
    scheduler: Scheduler,
    max_cv: float | None = None,
    max_blocks: int | None = None,
    statistic: str | None = None,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    calibration_data: CalibrationSource = None,
) -> RefreshReport:
    """Measure a LUT's stale or noisy entries again (see the module docstring).

    The blocks of a precision LUT are converted again (``calibration_data``: as
    :func:`build_lut`).

    ``statistic`` other than the LUT's restates every entry with it first, as
    :func:`build_lut` does (noise, and so the selection, does not depend on it);
    when no block is selected nothing is measured and the statistic is left
    as it is.

    ``space`` must be the LUT's (LutMismatch otherwise); ValueError for a
    negative ``max_cv`` or a ``max_blocks`` below 1. UnknownDevice when the
    LUT's device is not in the scheduler's fleet.
    """
    if space.identity() != lut.space:
        raise LutMismatch(
            f"the LUT {lut.label()} is not of the space {space.identity()}; pass its own space"
        )
    if max_cv is not None and max_cv < 0:
        raise ValueError(f"max_cv must be >= 0, got {max_cv}")
    if max_blocks is not None and max_blocks < 1:
        raise ValueError(f"max_blocks must be >= 1, got {max_blocks}")
    store = LutStore(db)
    before = store.entries(lut.id)
    noise = _noise_of(db, before)
    keys = [b.key for b in distinct_blocks(space)]
    if max_cv is not None:
        keys = [k for k in keys if noise.get(k) is None or (noise[k] or 0.0) > max_cv]
    # Noisiest first; no entry or no measurement (unknown) before everything.
    keys.sort(key=lambda k: -math.inf if noise.get(k) is None else -(noise[k] or 0.0))
    chosen = keys if max_blocks is None else keys[:max_blocks]
    if not chosen:  # nothing over max_cv: nothing to measure (nor to restate)
        build = BuildReport(lut=store.get(lut.id), blocks=0, cached=0, measured=0)
    else:
        build = build_lut(
            space, lut.device, settings_from_dict(lut.settings), db=db, scheduler=scheduler,
            cache_dir=cache_dir, on_progress=on_progress, use_cache=False, only=chosen,
            statistic=statistic or lut.statistic, precision=lut.precision,
            calibration_data=calibration_data,
        )  # fmt: skip
    after = store.entries(lut.id)
    noise_after = _noise_of(db, after)
    rows = []
    for key in chosen:
        old, new = before.get(key), after.get(key)
        fresh = new is not None and (old is None or new.measurement_uid != old.measurement_uid)
        rows.append(RefreshedEntry(
            key, None if old is None else old.latency_ms, noise.get(key),
            new.latency_ms if fresh and new is not None else None,
            noise_after.get(key) if fresh else None,
        ))  # fmt: skip
    return RefreshReport(build, tuple(rows), len(keys), len(keys) - len(chosen),
                         _over(noise, max_cv), _over(noise_after, max_cv))
