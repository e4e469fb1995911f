"""Predict a network's latency from a LUT: a calibrated sum of its blocks' entries.

``raw_sum(arch)`` adds the LUT latency of every block the arch is made of
(``space.blocks(arch)``, repeats included); ``predict(arch)`` applies the
device's calibration line (``a * sum + b``, see :mod:`._calibration`), or
returns the raw sum while the LUT is uncalibrated. A prediction costs a dict
look-up per block: thousands of archs per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut._calibration import Calibration, fit_calibration
from fleetnas.controller.lut._errors import LutNotFound, MissingBlock
from fleetnas.controller.lut._store import DEFAULT_LUT_PRECISION, LutInfo, LutStore, _lut_word
from fleetnas.controller.spaces import Arch, SearchSpace


class LatencyPredictor:
    """Latency predictions (ms) for the archs of ``space`` on one device.

    ``entries`` maps block keys to latencies (ms). ``device`` only names the
    device in errors. Not thread-safe while :meth:`calibrate` runs; the
    prediction methods only read.
    """

    def __init__(
        self,
        space: SearchSpace,
        entries: Mapping[str, float],
        *,
        device: str = "?",
        calibration: Calibration | None = None,
        lut: LutInfo | None = None,
    ) -> None:
        for key, value in entries.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"LUT entry {key}: latency {value!r} must be finite and > 0")
        self.space = space
        self.device = device
        self.entries = dict(entries)
        self.calibration = calibration
        self.lut = lut

    @classmethod
    def from_db(
        cls, db: CostDB, space: SearchSpace, device: str, settings_hash: str, *,
        precision: str = DEFAULT_LUT_PRECISION,
    ) -> LatencyPredictor:
        """The predictor of a stored LUT of ``precision``, with its calibration.

        The LUT of exactly ``space.identity()`` is used when it exists. Block
        keys do not depend on the space's configuration, so otherwise a LUT
        of another configuration of the same space (same device and settings)
        whose entries cover every block of ``space`` serves too (the newest
        such). Raises LutNotFound, with the command that builds the LUT.
        """
        store = LutStore(db)
        candidates = store.find(space_name=space.name, device=device, settings_hash=settings_hash,
                                precision=precision)
        candidates = [c for c in candidates if c.space_version == space.version]
        exact = [c for c in candidates if c.space == space.identity()]
        if exact:
            return cls.from_lut(db, space, exact[0])
        needed = {b.key for b in space.all_blocks()}
        for info in candidates:  # newest first
            entries = store.entries(info.id)
            if needed <= entries.keys():
                return cls(space, {k: e.latency_ms for k, e in entries.items()}, device=device,
                           calibration=info.calibration, lut=info)
        flag = "" if precision == DEFAULT_LUT_PRECISION else f" --precision {precision}"
        raise LutNotFound(
            f"no {_lut_word(precision)} of {space.identity()} (version {space.version}) on {device} "
            f"with settings {settings_hash}; build one with `fleetnas lut build --space "
            f"{space.name} --device {device}{flag}` and the same settings"
        )

    @classmethod
    def from_lut(cls, db: CostDB, space: SearchSpace, lut: LutInfo) -> LatencyPredictor:
        """The predictor of one stored LUT (its entries and calibration) for ``space``."""
        entries = LutStore(db).entries(lut.id)
        return cls(space, {k: e.latency_ms for k, e in entries.items()}, device=lut.device,
                   calibration=lut.calibration, lut=lut)

    def _space_label(self) -> str:
        return self.space.identity()

    def raw_sum(self, arch: Arch) -> float:
        """Sum of the LUT latencies (ms) of ``arch``'s blocks. Raises MissingBlock."""
        total = 0.0
        for block in self.space.blocks(arch):
            key = block.key
            try:
                total += self.entries[key]
            except KeyError:
                raise MissingBlock(key, self._space_label(), self.device) from None
        return total

    def predict(self, arch: Arch) -> float:
        """The calibrated prediction (ms); the raw sum while uncalibrated. Raises MissingBlock."""
        raw = self.raw_sum(arch)
        return raw if self.calibration is None else self.calibration.apply(raw)

    def missing_blocks(self, arch: Arch) -> list[str]:
        """Keys of ``arch``'s blocks that have no entry (empty when it can be predicted)."""
        return sorted({b.key for b in self.space.blocks(arch)} - self.entries.keys())

    def calibrate(self, archs: Sequence[Arch], measured_ms: Sequence[float]) -> Calibration:
        """Fit the calibration on end-to-end measurements, use it from now on, return it.

        Needs at least 5 archs (see :func:`fit_calibration`); raises
        CalibrationError, or MissingBlock for an arch the LUT cannot sum.
        Storing it is the caller's choice (``LutStore.set_calibration``).
        """
        sums = [self.raw_sum(arch) for arch in archs]
        encodings = [self.space.encode(arch) for arch in archs]
        self.calibration = fit_calibration(sums, measured_ms, encodings)
        return self.calibration
