"""Find the stored transfer fit that predicts a target without a LUT, and load it again.

A search in a mode that uses LUTs (``lut``, ``hybrid``) predicts a target
with its block LUT when it has one (:mod:`._luts`), else its kernel LUT
(:mod:`._kernel_luts`); otherwise with the newest
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

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.driver._predict_fixed import (
    StoredPredictor,
    newest_serving,
    stored_by_id,
)
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import settings_mismatches
from fleetnas.controller.predict import (
    StoredTransfer,
    TransferError,
    TransferFitNotFound,
    TransferStore,
    predictor_from_params,
)
from fleetnas.controller.spaces import SearchSpace

#: the value source of a transfer fit's predictions (the candidates' ``sources``)
TRANSFER_SOURCE = "transfer"


def find_transfers(
    db: CostDB, space: SearchSpace, config: SearchConfig, fleet: Fleet | None = None, *,
    skip: Mapping[str, object] | None = None,
) -> dict[str, StoredTransfer]:
    """The newest serving transfer fit of every target not in ``skip`` (those with a block
    or kernel LUT), when the search's source uses LUTs; targets with none are left out."""
    store = TransferStore(db)

    def serves(row: StoredTransfer, request: agent_pb2.BenchmarkSettings) -> bool:
        return row.space == space.identity() and not settings_mismatches(request, row.settings)

    return newest_serving(db, space, config, fleet, skip,
                          lambda device: store.find(space_name=space.name, device=device),
                          serves)


def transfer_predictors(space: SearchSpace, fits: Mapping[str, StoredTransfer],
                        cache_dir: str | Path | None = None) -> dict[str, StoredPredictor]:
    """The predictor of each stored fit; SearchConfigError for a fit of another space.

    Each predicted arch is exported once for its descriptors (into the export cache
    ``cache_dir`` when given, so a resume or a later search exports nothing again)."""
    out = {}
    for key, row in fits.items():
        if row.space != space.identity():
            raise SearchConfigError(f"transfer fit {row.id[:12]} for {key} is of {row.space}, "
                                    f"not {space.identity()}")
        try:
            predictor = predictor_from_params(space, row.params, cache_dir)
        except TransferError as exc:
            raise SearchConfigError(f"transfer fit {row.id[:12]} for {key}: {exc}") from exc
        out[key] = StoredPredictor(predictor, TRANSFER_SOURCE, f"transfer fit {row.id[:12]} "
                                   f"({len(predictor.sources)} source(s))")
    return out


def stored_transfers(db: CostDB, config: SearchConfig) -> dict[str, StoredTransfer]:
    """The stored fits a stored search predicts with; SearchConfigError when one is gone."""
    return stored_by_id(config.transfers, TransferStore(db).get, TransferFitNotFound,
                        "transfer fit")
