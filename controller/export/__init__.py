"""ONNX export of search-space archs and blocks: deterministic, validated, cached on disk.

``export_arch(space, arch)`` and ``export_block(space, block)`` return an
:class:`ExportedModel` (bytes, sha256, input name and shape). The same input
always gives byte-identical ONNX; a second export of it is a file read from
``default_cache_dir()`` (or ``cache_dir=``). ``register_arch(db, space, arch)``
and ``register_block(db, space, block)`` also record the model with its
origin in the cost DB and return the scheduler's ``ModelRef``: the one way
the measuring code turns archs and blocks into jobs. See ``docs/spaces.md``.
"""

from __future__ import annotations

from fleetnas.controller.export._cache import default_cache_dir
from fleetnas.controller.export._export import (
    FORMAT_VERSION,
    INPUT_NAME,
    OPSET,
    arch_module,
    block_module,
    export_arch,
    export_block,
)
from fleetnas.controller.export._model import ExportedModel, ExportError
from fleetnas.controller.export._register import (
    BLOCK_ARCH_PREFIX,
    block_model_arch,
    model_ref,
    register_arch,
    register_block,
)

__all__ = [
    "BLOCK_ARCH_PREFIX",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "OPSET",
    "ExportError",
    "ExportedModel",
    "arch_module",
    "block_model_arch",
    "block_module",
    "default_cache_dir",
    "export_arch",
    "export_block",
    "model_ref",
    "register_arch",
    "register_block",
]
