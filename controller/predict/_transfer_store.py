"""Stored transfer fits: a fitted transfer model kept in the cost DB, reloaded exactly.

:func:`~._transfer.transfer` is deterministic from its DB inputs, but those
inputs grow: a source device measures more archs, the new device measures
more. A search that predicted with a fit must keep predicting with *that*
fit when resumed, so the fit's parameters are stored whole (table
``transfer_fits``, schema version 9): every source's measured archs and its
feature model, the new device's reference measurements and the fitted
coefficients. The row's id is the sha256 of those parameters (canonical
JSON), so saving the same fit twice stores one row, and a search keeps only
the id (``SearchConfig.transfers``).

What a caller may rely on: :meth:`TransferStore.predictor` of a saved fit
predicts exactly what the fit's ``TransferPredictor.predict_many`` did
(floats round-trip through JSON exactly; arch descriptors are recomputed
from the exported model, which is deterministic); TransferFitNotFound (a
``LookupError``) when no fit has the id. Thread-safe as ``CostDB`` is.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleetnas.controller.costdb import CostDB, canonical_json
from fleetnas.controller.predict._descriptors import FEATURES
from fleetnas.controller.predict._stored_rows import row_by_id, rows_where
from fleetnas.controller.predict._transfer import (
    Descriptors,
    Source,
    TransferError,
    TransferFit,
    TransferPredictor,
    TransferResult,
    prediction_floor,
)
from fleetnas.controller.spaces import SearchSpace

_COLUMNS = ("id, space, space_name, space_version, device, settings_hash, settings, n, "
            "loo_rmspe, params, created_at")


class TransferFitNotFound(LookupError):
    """No stored transfer fit has this id (or none matches the query)."""


@dataclass(frozen=True)
class StoredTransfer:
    """One stored fit: what it predicts (space, device, settings) and its parameters."""

    id: str
    space: str
    space_name: str
    space_version: int
    device: str
    settings_hash: str
    settings: dict[str, Any]
    n: int
    loo_rmspe: float
    params: dict[str, Any]
    created_at: float

    @property
    def sources(self) -> list[str]:
        """The source devices' labels (device/settings hash prefix)."""
        return [f"{s['device']}/{s['settings_hash'][:8]}" for s in self.params["sources"]]

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> StoredTransfer:
        return cls(row["id"], row["space"], row["space_name"], int(row["space_version"]),
                   row["device"], row["settings_hash"], json.loads(row["settings"]),
                   int(row["n"]), float(row["loo_rmspe"]), json.loads(row["params"]),
                   float(row["created_at"]))


def transfer_params(predictor: TransferPredictor, measured: Mapping[str, float]) -> dict[str, Any]:
    """The parameters that rebuild ``predictor`` (JSON-ready, plain floats)."""
    fit = predictor.fit
    return {
        "features": list(FEATURES),
        "measured": {k: float(v) for k, v in sorted(measured.items())},
        "sources": [{"device": s.device, "settings_hash": s.settings_hash, "threads": s.threads,
                     "measured": {k: float(v) for k, v in sorted(s.measured.items())},
                     "theta": [float(v) for v in s.theta], "fit_rmspe": float(s.fit_rmspe)}
                    for s in predictor.sources],
        "fit": {"coef": [float(v) for v in fit.coef], "sources": fit.sources,
                "lambda_w": float(fit.lambda_w), "lambda_delta": float(fit.lambda_delta),
                "loo_rmspe": float(fit.loo_rmspe)},
    }  # fmt: skip


def predictor_from_params(space: SearchSpace, params: Mapping[str, Any],
                          cache_dir: str | Path | None = None) -> TransferPredictor:
    """The predictor of stored ``params``; TransferError when they were fitted on other
    arch features than this fleetnas computes."""
    if list(params["features"]) != list(FEATURES):
        raise TransferError("the stored transfer fit was made over other arch features; refit "
                            "it with `fleetnas lut transfer`")
    sources = [Source(s["device"], s["settings_hash"], int(s["threads"]), dict(s["measured"]),
                      np.array(s["theta"], dtype=np.float64), float(s["fit_rmspe"]))
               for s in params["sources"]]
    f = params["fit"]
    fit = TransferFit(np.array(f["coef"], dtype=np.float64), int(f["sources"]),
                      float(f["lambda_w"]), float(f["lambda_delta"]), float(f["loo_rmspe"]))
    return TransferPredictor(space, sources, fit, Descriptors(space, cache_dir),
                             prediction_floor(params["measured"]))


class TransferStore:
    """The ``transfer_fits`` table of one cost DB."""

    def __init__(self, db: CostDB) -> None:
        self.db = db

    def save(self, space: SearchSpace, device: str, result: TransferResult) -> StoredTransfer:
        """Store ``result``'s fit (once: the id is its parameters' hash) and return its row.

        TransferError when the settings the new device measured with are unknown.
        """
        if result.settings_hash is None:
            raise TransferError(f"the settings {device} measured with are unknown; the fit "
                                "cannot be stored")
        found = self.db.measurements(device=device, settings_hash=result.settings_hash, limit=1)
        settings = found[0].settings if found else {}
        params = transfer_params(result.predictor, result.measured)
        text = canonical_json(params)
        fit_id = hashlib.sha256(text.encode()).hexdigest()
        with self.db.write_transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO transfer_fits (id, space, space_name, space_version, "
                "device, settings_hash, settings, n, loo_rmspe, params, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fit_id, space.identity(), space.name, space.version, device,
                 result.settings_hash, canonical_json(settings), len(result.measured),
                 float(result.fit.loo_rmspe), text, time.time()),
            )  # fmt: skip
        return self.get(fit_id)

    def get(self, fit_id: str) -> StoredTransfer:
        """The one with this id (a unique prefix of at least 8 characters also serves)."""
        rows = row_by_id(self.db, "transfer_fits", _COLUMNS, fit_id)
        if len(rows) != 1:
            what = "no" if not rows else "more than one"
            raise TransferFitNotFound(f"{what} stored transfer fit has id {fit_id!r}; list "
                                      "them with `fleetnas lut show --transfers`")
        return StoredTransfer._from_row(rows[0])

    def find(self, *, space_name: str | None = None, device: str | None = None,
             ) -> list[StoredTransfer]:
        """The stored rows matching every given filter, newest first."""
        rows = rows_where(self.db, "transfer_fits", _COLUMNS,
                          {"space_name": space_name, "device": device})
        return [StoredTransfer._from_row(r) for r in rows]

    def predictor(self, fit: StoredTransfer | str, space: SearchSpace,
                  cache_dir: str | Path | None = None) -> TransferPredictor:
        """The predictor of a stored fit (by row or id), for ``space`` (its identity must match)."""
        row = self.get(fit) if isinstance(fit, str) else fit
        if row.space != space.identity():
            raise TransferError(f"transfer fit {row.id[:12]} is of {row.space}, not "
                                f"{space.identity()}")
        return predictor_from_params(space, row.params, cache_dir)

