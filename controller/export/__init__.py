"""ONNX export of search-space archs and blocks: deterministic, validated, cached on disk.

``export_arch(space, arch)`` and ``export_block(space, block)`` return an
:class:`ExportedModel` (bytes, sha256, input name and shape). The same input
always gives byte-identical ONNX; a second export of it is a file read from
``default_cache_dir()`` (or ``cache_dir=``). See ``docs/spaces.md``.
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

__all__ = [
    "FORMAT_VERSION",
    "INPUT_NAME",
    "OPSET",
    "ExportError",
    "ExportedModel",
    "arch_module",
    "block_module",
    "default_cache_dir",
    "export_arch",
    "export_block",
]
