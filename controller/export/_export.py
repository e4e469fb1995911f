"""Export an arch or a block of a search space to ONNX or TFLite, deterministically and cached.

Export of ONNX uses torch's TorchScript exporter (``dynamo=False``): on our
machines it is 8-40x faster than the dynamo exporter, produces models that run
the same, and keeps the weights inside the file. Weights are initialised under a
seed derived from the space's network identity and the encoding (or block key),
so the same arch always gives byte-identical models and hence the same sha256,
the model's identity in the cost DB; the ONNX and the TFLite model of an arch
carry the same weights. The converters (:mod:`._converters`) validate what they
write. A second export of the same input is a file read from
``default_cache_dir()`` (or ``cache_dir=``), keyed by everything that could
change the bytes (:mod:`._cache`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.export._cache import ModelCache, cache_key, default_cache_dir
from fleetnas.controller.export._converters import INPUT_NAME, OPSET, Converter, converter_for
from fleetnas.controller.export._model import ExportedModel
from fleetnas.controller.spaces import Arch, Block, SearchSpace

#: bump when this module starts to write different bytes for the same input
FORMAT_VERSION = 1
ONNX = agent_pb2.MODEL_FORMAT_ONNX


def export_arch(
    space: SearchSpace,
    arch: Arch,
    *,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
    opset: int = OPSET,
    model_format: int = ONNX,
) -> ExportedModel:
    """The model of ``arch`` in ``model_format`` (ONNX or TFLite), from the cache when it has
    been exported before.

    ``cache_dir`` defaults to :func:`default_cache_dir`; ``opset`` applies to
    ONNX. Raises UnknownArch for an arch outside the space, ConverterMissing
    when the format's converter is not installed (TFLite: the
    ``tflite-export`` extra), ExportError when export or validation fails.
    """
    encoding = space.encode(arch)
    identity = space.network_identity()  # what the bytes depend on (SearchSpace docstring)
    converter = converter_for(model_format)
    return _export(
        _description("arch", space, identity, encoding, converter, opset),
        converter,
        encoding=encoding,
        identity=identity,
        build=lambda: arch_module(space, arch),
        cache_dir=cache_dir,
        use_cache=use_cache,
        opset=opset,
    )


def export_block(
    space: SearchSpace,
    block: Block,
    *,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
    opset: int = OPSET,
    model_format: int = ONNX,
) -> ExportedModel:
    """The model of one block alone (``space.build_block``), cached like :func:`export_arch`.

    The weights' seed depends on the block key only, so a block gives the
    same bytes whichever configuration of the space exports it. Raises
    UnknownBlock for a block the space cannot build, and as :func:`export_arch`.
    """
    key = block.key
    converter = converter_for(model_format)
    return _export(
        _description("block", space, space.name, key, converter, opset),
        converter,
        encoding=key,
        identity=space.identity(),
        build=lambda: block_module(space, block),
        cache_dir=cache_dir,
        use_cache=use_cache,
        opset=opset,
    )


def arch_module(space: SearchSpace, arch: Arch) -> tuple[Any, tuple[int, ...]]:
    """``(module, input_shape)`` of ``arch`` with exactly the weights :func:`export_arch` exports."""
    with _seeded_rng(f"arch\n{space.network_identity()}\n{space.encode(arch)}"):
        module = space.build(arch)
    return module.eval(), tuple(space.input_shape(arch))


def block_module(space: SearchSpace, block: Block) -> tuple[Any, tuple[int, ...]]:
    """``(module, input_shape)`` of ``block`` with exactly the weights :func:`export_block` exports."""
    with _seeded_rng(f"block\n{block.key}"):
        module, input_shape = space.build_block(block)
    return module.eval(), tuple(input_shape)


@contextlib.contextmanager
def _seeded_rng(seed_text: str) -> Iterator[None]:
    """Seed torch's global CPU RNG from ``seed_text``; its previous state is restored after."""
    import torch

    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "big")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@functools.cache
def _torch_version() -> str:
    # Read from metadata so that a cache hit never has to import torch.
    return importlib.metadata.version("torch")


def _description(
    kind: str, space: SearchSpace, identity: str, text: str, converter: Converter, opset: int
) -> dict[str, Any]:
    return {
        "kind": kind,
        "space": identity,
        "space_version": space.version,
        "text": text,
        **converter.identity(opset),
        "torch": _torch_version(),
        "format": FORMAT_VERSION,
    }


def _export(
    description: dict[str, Any],
    converter: Converter,
    *,
    encoding: str,
    identity: str,
    build: Callable[[], tuple[Any, tuple[int, ...]]],
    cache_dir: Path | str | None,
    use_cache: bool,
    opset: int,
) -> ExportedModel:
    cache = ModelCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(),
                       converter.suffix)
    key = cache_key(description)
    if use_cache:
        hit = cache.get(key)
        if (
            hit is not None
            and hit[1].get("description") == description
            and isinstance(hit[1].get("input_shape"), list)
        ):
            data, meta = hit
            return ExportedModel(
                data, hashlib.sha256(data).hexdigest(), str(meta.get("input_name", INPUT_NAME)),
                tuple(meta["input_shape"]), encoding, identity, converter.model_format,
                cached=True, path=cache.path(key),
            )  # fmt: skip

    module, input_shape = build()
    data, input_name = converter.convert(module, input_shape, opset)
    meta = {"description": description, "input_shape": list(input_shape), "input_name": input_name}
    path = cache.put(key, data, meta) if use_cache else None
    return ExportedModel(
        data, hashlib.sha256(data).hexdigest(), input_name, tuple(input_shape), encoding,
        identity, converter.model_format, cached=False, path=path,
    )  # fmt: skip
