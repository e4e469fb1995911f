"""Find the stored kernel LUT that predicts a target without a block LUT, and load it again.

A search in a mode that uses LUTs (``lut``, ``hybrid``) predicts a target with
its block LUT when it has one (:mod:`._luts`: a lookup per block, microseconds
per candidate); otherwise with the newest stored kernel LUT (``fleetnas lut
kernels``, which stores every LUT it calibrates) of this space's identity on
the target's device (or a device of its class), measured with the settings
that change what runs (:data:`._luts.IDENTITY_FIELDS`), whose kernels were
extracted by this controller's onnxruntime on this kind of machine (another
version fuses differently, so its kernel keys would not be found); otherwise
with a stored transfer fit (:mod:`._transfers`). A kernel LUT costs about a
second of controller time per new candidate (an export and two onnxruntime
sessions to find the kernels it runs), cached on disk in the export cache.

The search keeps the LUT's id in ``SearchConfig.kernel_luts``; a resume loads
that very LUT by id, never a newer one, so it predicts exactly what the
original did.
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
    KernelLutNotFound,
    KernelLutStore,
    KernelLutUnusable,
    StoredKernelLut,
    extraction_environment,
    stored_kernel_predictor,
)
from fleetnas.controller.spaces import SearchSpace

#: the value source of a kernel LUT's predictions (the candidates' ``sources``)
KERNEL_LUT_SOURCE = "kernel-lut"


def find_kernel_luts(
    db: CostDB, space: SearchSpace, config: SearchConfig, fleet: Fleet | None = None, *,
    skip: Mapping[str, object] | None = None,
) -> dict[str, StoredKernelLut]:
    """The newest serving kernel LUT of every target not in ``skip`` (those with a block
    LUT), when the search's source uses LUTs; targets with none are left out."""
    store = KernelLutStore(db)
    environment = extraction_environment()

    def serves(row: StoredKernelLut, request: agent_pb2.BenchmarkSettings) -> bool:
        return (row.space == space.identity()
                and (row.lut.onnxruntime, row.lut.machine) == environment
                and not settings_mismatches(request, row.settings))

    return newest_serving(db, space, config, fleet, skip,
                          lambda device: store.find(space_name=space.name, device=device),
                          serves)


def kernel_lut_predictors(space: SearchSpace, rows: Mapping[str, StoredKernelLut],
                          cache_dir: str | Path | None = None) -> dict[str, StoredPredictor]:
    """The predictor of each stored LUT; SearchConfigError for a LUT of another space.

    Each predicted arch is exported and its kernels extracted once (cached under the
    export cache ``cache_dir`` when given, so a resume extracts nothing again)."""
    out = {}
    for key, row in rows.items():
        try:
            predictor = stored_kernel_predictor(row, space, cache_dir)
        except KernelLutUnusable as exc:
            raise SearchConfigError(f"kernel LUT {row.id[:12]} for {key}: {exc}") from exc
        out[key] = StoredPredictor(predictor, KERNEL_LUT_SOURCE,
                                   f"kernel LUT {row.id[:12]} ({row.kernels} kernels)")
    return out


def stored_kernel_luts(db: CostDB, config: SearchConfig) -> dict[str, StoredKernelLut]:
    """The kernel LUTs a stored search predicts with; SearchConfigError when one is gone."""
    return stored_by_id(config.kernel_luts, KernelLutStore(db).get, KernelLutNotFound,
                        "kernel LUT")
