"""Find the stored transfer fit that predicts a target without a LUT, and load it again.

A search in a mode that uses LUTs (``lut``, ``hybrid``) predicts a target
with its LUT when it has one (:mod:`._luts`); otherwise with the newest
stored transfer fit (``fleetnas lut transfer``, which stores every fit) of
this space's identity on the target's device (or a device of its class),
whose reference measurements were taken with the settings that change what
runs (:data:`._luts.IDENTITY_FIELDS`). The search keeps the fit's id in
``SearchConfig.transfers``; a resume loads that very fit by id, never a
newer one, so it predicts exactly what the original did.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.driver._luts import identity_request, target_devices
from fleetnas.controller.driver._source import latency_source_class
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import settings_mismatches
from fleetnas.controller.predict import (
    StoredTransfer,
    TransferError,
    TransferFitNotFound,
    TransferPredictor,
    TransferStore,
    predictor_from_params,
)
from fleetnas.controller.spaces import SearchSpace


def find_transfers(
    db: CostDB, space: SearchSpace, config: SearchConfig, fleet: Fleet | None = None, *,
    skip: Mapping[str, object] | None = None,
) -> dict[str, StoredTransfer]:
    """The newest serving transfer fit of every target not in ``skip`` (those with a LUT),
    when the search's source uses LUTs; targets with none are left out."""
    if not latency_source_class(config.mode).uses_luts:
        return {}
    store = TransferStore(db)
    found = {}
    for target in config.targets:
        if skip is not None and target.key in skip:
            continue
        request = identity_request(target)
        for device in target_devices(db, target, fleet):
            rows = [r for r in store.find(space_name=space.name, device=device)
                    if r.space == space.identity() and not settings_mismatches(request, r.settings)]
            if rows:
                found[target.key] = rows[0]
                break
    return found


def transfer_predictors(space: SearchSpace, fits: Mapping[str, StoredTransfer],
                        cache_dir: str | Path | None = None) -> dict[str, TransferPredictor]:
    """The predictor of each stored fit; SearchConfigError for a fit of another space.

    Each predicted arch is exported once for its descriptors (into the export cache
    ``cache_dir`` when given, so a resume or a later search exports nothing again)."""
    out = {}
    for key, row in fits.items():
        if row.space != space.identity():
            raise SearchConfigError(f"transfer fit {row.id[:12]} for {key} is of {row.space}, "
                                    f"not {space.identity()}")
        try:
            out[key] = predictor_from_params(space, row.params, cache_dir)
        except TransferError as exc:
            raise SearchConfigError(f"transfer fit {row.id[:12]} for {key}: {exc}") from exc
    return out


def stored_transfers(db: CostDB, config: SearchConfig) -> dict[str, StoredTransfer]:
    """The stored fits a stored search predicts with; SearchConfigError when one is gone."""
    store = TransferStore(db)
    out = {}
    for key, fit_id in config.transfers.items():
        try:
            out[key] = store.get(fit_id)
        except TransferFitNotFound as exc:
            raise SearchConfigError(
                f"the search predicts {key} with transfer fit {fit_id[:12]}, which is gone: {exc}"
            ) from exc
    return out
