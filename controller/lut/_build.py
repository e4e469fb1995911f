"""Build a LUT: measure every distinct block of a space once on one device.

:func:`build_lut` does, in order:

1. **Enumerate** ``space.all_blocks()`` (every resolution the space is
   configured with), one job per distinct block key.
2. **Export** each block in the format the device's runtime takes for the
   settings (ONNX for onnxruntime, TFLite for LiteRT:
   :meth:`Scheduler.model_format_for`) and record it in ``models`` with its
   origin (:func:`fleetnas.controller.export.register_block`: ``space`` = the
   space *name*, block keys do not depend on the space's configuration, and
   ``arch`` = ``"block:" + block key``). Everything is exported before
   anything is measured, so a local device is not disturbed by torch while
   it measures.
3. **Measure** all blocks in one scheduler batch. The scheduler answers what
   the cost DB already holds for this (model, device, settings) and measures
   the rest, recording each result as it arrives. So a build that is
   interrupted (Ctrl-C, SIGKILL, a crash) loses at most the benchmarks that
   were running, and rerunning it measures only what is missing: nothing is
   ever measured twice unless asked (``use_cache=False``: :func:`remeasure_lut`,
   or a noise threshold, 5).
4. **Store** an entry per block as outcomes arrive; the LUT (identity: space
   identity, device, the settings hash the agent echoed) is created with the
   first result, and marked ``complete`` once every block has an entry.
5. **Re-measure noisy entries** when ``max_cv`` is given: a block whose
   samples' CV (:func:`~fleetnas.controller.lut.sample_cv`) is over it is
   measured again, afresh, at most ``remeasure_attempts`` times or until one
   is under; the entry keeps the least noisy of its measurements, and
   :attr:`BuildReport.remeasured` records every attempt's CV. (Off by default:
   which threshold pays for itself is a bench_lut question not yet measured.)

6. **Statistic.** An entry is :func:`~fleetnas.controller.lut.entry_latency`
   of its measurement with the LUT's statistic (``statistic``; an existing LUT
   keeps its own when ``None``, a new one gets
   :data:`~fleetnas.controller.lut.DEFAULT_LUT_STATISTIC`). Building an
   existing LUT with another statistic first recomputes its entries from their
   stored measurements' raw samples (no device time) and clears its
   calibration, in one transaction (:meth:`LutStore.restate`); the build's
   cache hits then rewrite each entry with the same statistic.

7. **Precision.** ``precision`` (default fp32) names the LUT's precision, part
   of its identity: for another one every block's exported ONNX model is
   converted to it (:mod:`._precision`: the compress package's
   ``make_variant``; int8 calibrated on ``calibration_data``, else on random data,
   with one RandomCalibrationWarning per build) between steps 2 and 3, and the
   converted models are what is measured and stored, as that precision's LUT
   (beside the fp32 LUT of the same space, device and settings). A block with
   nothing to convert (a skip, a pooling) keeps its fp32 model
   (:attr:`BuildReport.unconverted`).

Failed blocks are reported, not raised; the LUT then stays ``building``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, settings_from_dict
from fleetnas.controller.export import register_block
from fleetnas.controller.lut._errors import LutMismatch
from fleetnas.controller.lut._precision import PrecisionConverter, check_model_format
from fleetnas.controller.lut._progress import LutProgress, ProgressCallback
from fleetnas.controller.lut._robust import (
    DEFAULT_LUT_STATISTIC,
    STATISTICS,
    entry_latency,
    sample_cv,
)
from fleetnas.controller.lut._store import (
    DEFAULT_LUT_PRECISION,
    LutEntry,
    LutInfo,
    LutStore,
    canonical_precision,
)
from fleetnas.controller.scheduler import (
    Job,
    JobOutcome,
    ModelRef,
    OutcomeStatus,
    Progress,
    Scheduler,
    Target,
)
from fleetnas.controller.spaces import Block, SearchSpace

if TYPE_CHECKING:
    from fleetnas.controller.compress import CalibrationSource

_FLUSH_EVERY = 64
#: how many times a noisy block is measured again at most (``max_cv``)
DEFAULT_REMEASURE_ATTEMPTS = 2


@dataclass(frozen=True)
class Remeasured:
    """A noisy block's history: the CV of each of its measurements in order (the first
    build's, then each re-measure), and the index of the one its entry keeps."""

    block_key: str
    cvs: tuple[float, ...]
    kept: int


@dataclass(frozen=True)
class BuildReport:
    """What a build did. ``lut`` is ``None`` only when no block could be measured."""

    lut: LutInfo | None
    blocks: int
    cached: int
    measured: int
    failed: tuple[tuple[str, str], ...] = field(default=())  # (block key, reason)
    export_s: float = 0.0
    measure_s: float = 0.0
    remeasured: tuple[Remeasured, ...] = field(default=())  # blocks over ``max_cv``
    #: the LUT's statistic before this build, when the build changed it (else ``None``)
    statistic_before: str | None = None
    #: entries recomputed from stored raw samples because the statistic changed
    restated: int = 0
    #: the random-calibration warning of an int8 build (also issued as a warning), else None
    calibration_warning: str | None = None
    #: blocks with nothing to convert to the LUT's precision: their entries are the fp32
    #: model's (:mod:`._precision`)
    unconverted: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return self.lut is not None and self.lut.status == "complete"


def distinct_blocks(space: SearchSpace) -> list[Block]:
    """The space's distinct blocks, one per key, sorted by key."""
    by_key = {block.key: block for block in space.all_blocks()}
    return [by_key[k] for k in sorted(by_key)]


def export_blocks(
    space: SearchSpace,
    blocks: Sequence[Block],
    db: CostDB,
    *,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
) -> list[ModelRef]:
    """Export each block as ``model_format`` and record its model with its origin; one
    ModelRef per block."""
    refs = []
    for i, block in enumerate(blocks, start=1):
        refs.append(register_block(db, space, block, cache_dir=cache_dir,
                                   model_format=model_format))
        if on_progress is not None:
            on_progress(LutProgress("export", i, len(blocks), block.key))
    return refs


class _EntryWriter:
    """Turns measure-phase outcomes into LUT entries, creating the LUT on the first."""

    def __init__(self, store: LutStore, space: SearchSpace, device: str, blocks_total: int,
                 statistic: str | None = None,
                 precision: str = DEFAULT_LUT_PRECISION) -> None:
        self.store = store
        self.precision = precision
        self.statistic = statistic  # None: the LUT's own (read when it is created)
        self.statistic_before: str | None = None
        self.restated = 0
        self.space = space
        self.device = device
        self.blocks_total = blocks_total
        self.lut: LutInfo | None = None
        self.pending: list[LutEntry] = []
        self.failed: list[tuple[str, str]] = []
        self.cached = 0
        self.measured = 0
        self.cvs: dict[str, list[float]] = {}  # block key -> the CV of each measurement

    def add(self, outcome: JobOutcome) -> None:
        key = str(outcome.job.tag)
        if not outcome.ok or outcome.measurement is None:
            if key not in self.cvs:  # a failed re-measure leaves the entry as it was
                self.failed.append((key, outcome.error_message or "failed"))
            return
        m = outcome.measurement
        if self.lut is None:
            self.lut = self.store.ensure(
                space=self.space.identity(), space_name=self.space.name,
                space_config=self.space.config(), space_version=self.space.version,
                device=self.device, settings_hash=m.settings_hash, settings=m.settings,
                blocks_total=self.blocks_total,
                statistic=self.statistic or DEFAULT_LUT_STATISTIC, precision=self.precision,
            )  # fmt: skip
            self._adopt_statistic()
        elif m.settings_hash != self.lut.settings_hash:
            self.failed.append((key, (
                f"measured with settings {m.settings_hash}, not the LUT's "
                f"{self.lut.settings_hash}: the agent resolved the same request differently "
                "(was it restarted with other options?)"
            )))  # fmt: skip
            return
        cvs = self.cvs.setdefault(key, [])
        cvs.append(sample_cv(m.samples_ms) if m.samples_ms else 0.0)
        if len(cvs) == 1:
            if outcome.status is OutcomeStatus.CACHED:
                self.cached += 1
            else:
                self.measured += 1
        elif cvs[-1] >= min(cvs[:-1]):
            return  # a re-measure no less noisy than the entry it has
        assert self.statistic is not None
        self.pending.append(LutEntry(key, m.model_sha256, entry_latency(m, self.statistic), m.uid))
        if len(self.pending) >= _FLUSH_EVERY or outcome.status is OutcomeStatus.MEASURED:
            self.flush()

    def _adopt_statistic(self) -> None:
        """Use the LUT's statistic, or restate its entries with the one asked for."""
        assert self.lut is not None
        if self.statistic is None or self.statistic == self.lut.statistic:
            self.statistic = self.lut.statistic
            return
        latencies = {}
        for key, entry in self.store.entries(self.lut.id).items():
            m = self.store.db.get_measurement(entry.measurement_uid or "")
            try:
                if m is not None:
                    latencies[key] = entry_latency(m, self.statistic)
            except ValueError:
                continue  # no samples: this build's outcome for the block rewrites it
        self.statistic_before = self.lut.statistic
        self.restated = self.store.restate(self.lut.id, self.statistic, latencies)
        self.lut = self.store.get(self.lut.id)

    def flush(self) -> None:
        if self.lut is not None and self.pending:
            self.store.put_entries(self.lut.id, self.pending)
            self.pending = []

    def noisy(self, max_cv: float) -> list[str]:
        """Blocks whose least noisy measurement so far is over ``max_cv``."""
        return [key for key, cvs in self.cvs.items() if min(cvs) > max_cv]

    def remeasured(self) -> tuple[Remeasured, ...]:
        return tuple(
            Remeasured(key, tuple(cvs), cvs.index(min(cvs)))
            for key, cvs in self.cvs.items() if len(cvs) > 1
        )  # fmt: skip


def _check_statistic(statistic: str | None) -> None:
    if statistic is not None and statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")


def _selected_blocks(blocks: list[Block], only: Collection[str] | None) -> list[Block]:
    wanted = None if only is None else set(only)
    return blocks if wanted is None else [b for b in blocks if b.key in wanted]


def build_lut(
    space: SearchSpace,
    device: str,
    settings: agent_pb2.BenchmarkSettings,
    *,
    db: CostDB,
    scheduler: Scheduler,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    use_cache: bool = True,
    max_cv: float | None = None,
    remeasure_attempts: int = DEFAULT_REMEASURE_ATTEMPTS,
    statistic: str | None = None,
    only: Collection[str] | None = None,
    precision: str = DEFAULT_LUT_PRECISION,
    calibration_data: CalibrationSource = None,
) -> BuildReport:
    """Measure every distinct block of ``space`` on ``device``; see the module docstring.

    ``use_cache=False`` measures every block afresh (the entries then name the
    new measurements); ``max_cv`` and ``remeasure_attempts`` re-measure noisy
    blocks (step 5); ``statistic`` is step 6 (ValueError for an unknown one).
    ``only`` (block keys) measures those blocks alone: the other entries stay
    as they are. ``precision`` and ``calibration_data`` are step 7 (UnknownPrecision
    for an unknown name, PrecisionUnsupported for a device whose runtime takes
    no ONNX; a calibration set that cannot be read raises CalibrationError).

    ``device`` is a device of the scheduler's fleet (raises UnknownDevice
    before any work otherwise); ``settings`` is the benchmark request. On
    KeyboardInterrupt the entries stored so far are kept and the interrupt
    propagates; run the build again to resume.
    """
    _check_statistic(statistic)
    precision = canonical_precision(precision)
    model_format = scheduler.model_format_for(Target.device(device), settings)  # UnknownDevice
    check_model_format(precision, model_format, device)
    all_blocks = distinct_blocks(space)
    blocks = _selected_blocks(all_blocks, only)
    started = time.monotonic()
    refs = export_blocks(space, blocks, db, cache_dir=cache_dir, on_progress=on_progress,
                         model_format=model_format)
    converter = PrecisionConverter(db, precision, calibration_data, cache_dir)
    if converter.converts:
        refs = _converted(converter, space, blocks, refs, on_progress)
    exported = time.monotonic()

    store = LutStore(db)
    writer = _EntryWriter(store, space, device, len(all_blocks), statistic, precision)
    jobs = [Job.on_device(ref, device, settings, tag=block.key) for ref, block in zip(refs, blocks, strict=True)]
    _measure(scheduler, jobs, writer, on_progress, use_cache=use_cache, max_cv=max_cv,
             remeasure_attempts=remeasure_attempts)
    lut = writer.lut
    if lut is not None:
        stored = store.entries(lut.id).keys()
        if all(block.key in stored for block in all_blocks):
            store.set_status(lut.id, "complete")
        lut = store.get(lut.id)
    return BuildReport(
        lut=lut,
        blocks=len(blocks),
        cached=writer.cached,
        measured=writer.measured,
        failed=tuple(writer.failed),
        export_s=exported - started, measure_s=time.monotonic() - exported,
        remeasured=writer.remeasured(), statistic_before=writer.statistic_before,
        restated=writer.restated, calibration_warning=converter.warning("blocks"),
        unconverted=tuple(converter.unconverted),
    )  # fmt: skip


def _measure(scheduler: Scheduler, jobs: Sequence[Job], writer: _EntryWriter,
             on_progress: ProgressCallback | None, *, use_cache: bool, max_cv: float | None,
             remeasure_attempts: int) -> None:
    """Steps 3-5: measure the jobs, store their entries, re-measure the noisy ones."""

    def progress_of(phase: str) -> Callable[[Progress], None]:
        def progress(p: Progress) -> None:
            writer.add(p.outcome)
            if on_progress is not None:
                on_progress(LutProgress(
                    phase, p.done, p.total, str(p.outcome.job.tag),
                    cached=writer.cached, measured=writer.measured, failed=len(writer.failed),
                ))  # fmt: skip

        return progress

    try:
        scheduler.run(jobs, on_progress=progress_of("measure"), use_cache=use_cache)
        if max_cv is not None:
            by_key = {str(job.tag): job for job in jobs}
            for _ in range(remeasure_attempts):
                noisy = writer.noisy(max_cv)
                if not noisy:
                    break
                scheduler.run([by_key[k] for k in noisy], on_progress=progress_of("remeasure"),
                              use_cache=False)
    finally:
        writer.flush()


def _converted(converter: PrecisionConverter, space: SearchSpace, blocks: Sequence[Block],
               refs: Sequence[ModelRef], on_progress: ProgressCallback | None) -> list[ModelRef]:
    """Each block's model converted to the build's precision; warns once (module docstring)."""
    out = []
    for i, (block, ref) in enumerate(zip(blocks, refs, strict=True), start=1):
        out.append(converter.block(space, block, ref))
        if on_progress is not None:
            on_progress(LutProgress("convert", i, len(blocks), block.key))
    converter.warn("blocks")
    return out


def remeasure_lut(
    space: SearchSpace,
    lut: LutInfo,
    *,
    db: CostDB,
    scheduler: Scheduler,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    max_cv: float | None = None,
    remeasure_attempts: int = DEFAULT_REMEASURE_ATTEMPTS,
) -> BuildReport:
    """Measure every block of a (stale) LUT again, afresh, with its own settings: each
    entry then names its new measurement (the old ones stay in the cost DB).

    ``space`` is the LUT's space (its identity must be the LUT's: LutMismatch
    otherwise); the rest is as :func:`build_lut`.
    """
    if space.identity() != lut.space:
        raise LutMismatch(
            f"the LUT {lut.label()} is not of the space {space.identity()}; pass its own space"
        )
    return build_lut(
        space, lut.device, settings_from_dict(lut.settings), db=db, scheduler=scheduler,
        cache_dir=cache_dir, on_progress=on_progress, use_cache=False, max_cv=max_cv,
        remeasure_attempts=remeasure_attempts, precision=lut.precision,
    )  # fmt: skip
