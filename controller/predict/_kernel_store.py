"""Stored kernel LUTs: a calibrated kernel LUT kept in the cost DB, reloaded exactly.

``fleetnas lut kernels`` builds and calibrates a :class:`~._kernel_lut.KernelLut`;
a search predicts with it (``fleetnas search --mode lut|hybrid``) and must keep
predicting with *that* LUT when resumed, however many kernels were measured
since, so the LUT is stored whole (table ``kernel_luts``, schema version 11):
its entries, null model, level, extraction environment and calibration. The
row's id is the sha256 of the LUT's canonical JSON, so saving the same LUT
twice stores one row; a search keeps only the id (``SearchConfig.kernel_luts``).

What a caller may rely on: :meth:`KernelLutStore.predictor` of a saved LUT
predicts exactly what the LUT did (floats round-trip through JSON exactly);
KernelLutNotFound (a ``LookupError``) when no LUT has the id. Thread-safe as
``CostDB`` is.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetnas.controller.costdb import CostDB, canonical_json
from fleetnas.controller.predict._kernel_lut import KernelLut, KernelPredictor
from fleetnas.controller.predict._stored_rows import row_by_id, rows_where
from fleetnas.controller.spaces import SearchSpace

_COLUMNS = ("id, space, space_name, space_version, device, settings_hash, settings, level, "
            "kernels, loo_rmspe, lut, created_at")


class KernelLutNotFound(LookupError):
    """No stored kernel LUT has this id."""


class KernelLutUnusable(ValueError):
    """A stored kernel LUT cannot predict here (another space, or not calibrated)."""


@dataclass(frozen=True)
class StoredKernelLut:
    """One stored kernel LUT: what it predicts (space, device, settings) and the LUT."""

    id: str
    space: str
    space_name: str
    space_version: int
    device: str
    settings_hash: str
    settings: dict[str, Any]
    level: str
    kernels: int
    loo_rmspe: float
    lut: KernelLut
    created_at: float

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> StoredKernelLut:
        return cls(row["id"], row["space"], row["space_name"], int(row["space_version"]),
                   row["device"], row["settings_hash"], json.loads(row["settings"]),
                   row["level"], int(row["kernels"]), float(row["loo_rmspe"]),
                   KernelLut.from_dict(json.loads(row["lut"])), float(row["created_at"]))


class KernelLutStore:
    """The ``kernel_luts`` table of one cost DB."""

    def __init__(self, db: CostDB) -> None:
        self.db = db

    def save(self, space: SearchSpace, lut: KernelLut) -> StoredKernelLut:
        """Store the calibrated ``lut`` of ``space`` (once: the id is its JSON's hash) and
        return its row. KernelLutUnusable when it is not calibrated or its settings are
        unknown (it was not measured through this DB)."""
        if lut.calibration is None:
            raise KernelLutUnusable("only a calibrated kernel LUT can be stored: calibrate it "
                                    "on whole nets first (fit_kernel_lut)")
        if lut.settings_hash is None:
            raise KernelLutUnusable(f"the settings {lut.device}'s kernels were measured with "
                                    "are unknown; the LUT cannot be stored")
        found = self.db.measurements(device=lut.device, settings_hash=lut.settings_hash,
                                     limit=1)
        if not found:
            raise KernelLutUnusable(f"no measurement of {lut.device} with settings "
                                    f"{lut.settings_hash[:12]} is in this cost DB")
        text = canonical_json(lut.to_dict())
        lut_id = hashlib.sha256(f"{space.identity()}\n{text}".encode()).hexdigest()
        loo = lut.calibration.loo_rmspe
        with self.db.write_transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO kernel_luts (id, space, space_name, space_version, "
                "device, settings_hash, settings, level, kernels, loo_rmspe, lut, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (lut_id, space.identity(), space.name, space.version, lut.device,
                 lut.settings_hash, canonical_json(found[0].settings), lut.level,
                 len(lut.entries), loo if math.isfinite(loo) else math.nan, text, time.time()),
            )  # fmt: skip
        return self.get(lut_id)

    def get(self, lut_id: str) -> StoredKernelLut:
        """The one with this id (a unique prefix of at least 8 characters also serves)."""
        rows = row_by_id(self.db, "kernel_luts", _COLUMNS, lut_id)
        if len(rows) != 1:
            what = "no" if not rows else "more than one"
            raise KernelLutNotFound(f"{what} stored kernel LUT has id {lut_id!r}; list them "
                                    "with `fleetnas lut show --kernels`")
        return StoredKernelLut._from_row(rows[0])

    def find(self, *, space_name: str | None = None, device: str | None = None,
             ) -> list[StoredKernelLut]:
        """The stored rows matching every given filter, newest first."""
        rows = rows_where(self.db, "kernel_luts", _COLUMNS,
                          {"space_name": space_name, "device": device})
        return [StoredKernelLut._from_row(r) for r in rows]


def stored_kernel_predictor(row: StoredKernelLut, space: SearchSpace,
                            cache_dir: str | Path | None = None) -> KernelPredictor:
    """The predictor of a stored LUT for ``space``; KernelLutUnusable when ``space`` is not
    the one it was calibrated on."""
    if row.space != space.identity():
        raise KernelLutUnusable(f"kernel LUT {row.id[:12]} is of {row.space}, not "
                                f"{space.identity()}")
    return KernelPredictor(space, row.lut, cache_dir=cache_dir)
