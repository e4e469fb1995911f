"""Export of search-space archs and blocks to ONNX or TFLite: deterministic, validated, cached.

``export_arch(space, arch)`` and ``export_block(space, block)`` return an
:class:`ExportedModel` (bytes, sha256, format, input name and shape);
``model_format=MODEL_FORMAT_TFLITE`` writes ``.tflite`` through litert-torch
(the ``tflite-export`` extra). The same input always gives byte-identical
bytes; a second export of it is a file read from ``default_cache_dir()`` (or
``cache_dir=``). ``register_arch(db, space, arch)`` and
``register_block(db, space, block)`` also record the model with its origin in
the cost DB and return the scheduler's ``ModelRef``: the one way the measuring
code turns archs and blocks into jobs. See ``docs/spaces.md`` and
``docs/export.md``.
"""

from __future__ import annotations

from fleetnas.controller.export._cache import ModelCache, cache_key, default_cache_dir
from fleetnas.controller.export._converters import (
    INPUT_NAME,
    OPSET,
    TFLITE_EXTRA_HINT,
    converter_for,
    module_to_onnx,
)
from fleetnas.controller.export._export import (
    FORMAT_VERSION,
    arch_module,
    block_module,
    export_arch,
    export_block,
)
from fleetnas.controller.export._model import ConverterMissing, ExportedModel, ExportError
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
    "ModelCache",
    "OPSET",
    "TFLITE_EXTRA_HINT",
    "ConverterMissing",
    "ExportError",
    "ExportedModel",
    "arch_module",
    "block_model_arch",
    "block_module",
    "cache_key",
    "converter_for",
    "default_cache_dir",
    "export_arch",
    "export_block",
    "model_ref",
    "module_to_onnx",
    "register_arch",
    "register_block",
]
