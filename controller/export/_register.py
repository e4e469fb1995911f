"""Export and register: the one path from an arch or block of a space to a :class:`ModelRef`.

:func:`register_arch` and :func:`register_block` export (cached on disk, see
:mod:`._export`) in the format a device's runtime takes (ONNX for
onnxruntime, TFLite for LiteRT: ``Scheduler.model_format_for``), record the
model in the cost DB with its origin, and return the ``ModelRef`` a
scheduler job takes. Every caller that measures a space's models (the
search's measurer, LUT builds, LUT eval/check) goes through here, so a model
is recorded the same way whoever exported it. The ONNX and the TFLite model
of one arch are two models (two sha256) with the same origin.

The origin (``models.space``, ``models.arch``) names what the bytes depend on:

* an **arch**: the space's network identity (``SearchSpace.network_identity()``:
  name and configuration less sampling-only options) and the arch encoding,
  with its parameter and FLOP counts;
* a **block**: the space *name* and ``"block:" + block key``: a block's bytes
  depend on its key only (:func:`~._export.export_block`), so every
  configuration of the space shares the same model.

The model row is written only when it lacks what is known here (the common
case of a second export is a single read). Raises what the exporters raise
(UnknownArch, UnknownBlock, ExportError).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export._export import export_arch, export_block
from fleetnas.controller.export._model import ExportedModel
from fleetnas.controller.scheduler import ModelRef
from fleetnas.controller.spaces import Arch, Block, SearchSpace

#: the ``models.arch`` of a block's ONNX model is this prefix + its block key
BLOCK_ARCH_PREFIX = "block:"


@dataclass(frozen=True)
class _Origin:
    space: str
    arch: str
    counts: Callable[[], tuple[int, int]] | None = None  # (params, flops), computed if needed


def block_model_arch(block: Block) -> str:
    """The ``models.arch`` value that marks a model as this block."""
    return BLOCK_ARCH_PREFIX + block.key


def model_ref(exported: ExportedModel) -> ModelRef:
    """A job's reference to an exported model: by path when cached on disk (a batch of
    hundreds need not sit in memory), else by its bytes."""
    size = len(exported.data)
    if exported.path is not None:
        return ModelRef(exported.sha256, size, path=exported.path,
                        model_format=exported.model_format)
    return ModelRef(exported.sha256, size, data=exported.data, model_format=exported.model_format)


def register_arch(
    db: CostDB,
    space: SearchSpace,
    arch: Arch,
    *,
    cache_dir: str | Path | None = None,
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
) -> ModelRef:
    """Export ``arch`` as ``model_format`` and record its model with its origin (module
    docstring)."""
    exported = export_arch(space, arch, cache_dir=cache_dir, model_format=model_format)
    origin = _Origin(
        space.network_identity(), exported.encoding,
        lambda: (space.count_params(arch), space.count_flops(arch)),
    )  # fmt: skip
    return _register(db, exported, origin)


def register_block(
    db: CostDB,
    space: SearchSpace,
    block: Block,
    *,
    cache_dir: str | Path | None = None,
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
) -> ModelRef:
    """Export ``block`` alone as ``model_format`` and record its model with its origin
    (module docstring)."""
    exported = export_block(space, block, cache_dir=cache_dir, model_format=model_format)
    return _register(db, exported, _Origin(space.name, block_model_arch(block)))


def _register(db: CostDB, exported: ExportedModel, origin: _Origin) -> ModelRef:
    known = db.get_model(exported.sha256)
    complete = (
        known is not None
        and known.space == origin.space
        and known.arch == origin.arch
        and known.size_bytes is not None
        and (origin.counts is None or known.params is not None)
    )
    if not complete:
        params, flops = origin.counts() if origin.counts is not None else (None, None)
        db.record_model(
            exported.sha256, len(exported.data), space=origin.space, arch=origin.arch,
            params=params, flops=flops,
        )  # fmt: skip
    return model_ref(exported)
