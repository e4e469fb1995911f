"""Export an arch or a block of a search space to ONNX, deterministically and cached.

Export uses torch's TorchScript exporter (``dynamo=False``): on our machines it
is 8-40x faster than the dynamo exporter, produces models that run the same,
and keeps the weights inside the file. Weights are initialised under a seed
derived from the space's network identity and the encoding (or block key), so
the same arch always gives byte-identical ONNX and hence the same sha256, the
model's identity in the cost DB. Every export is validated with ``onnx.checker``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fleetnas.controller.export._cache import OnnxCache, cache_key, default_cache_dir
from fleetnas.controller.export._model import ExportedModel, ExportError
from fleetnas.controller.spaces import Arch, Block, SearchSpace

#: the ONNX opset every export uses unless told otherwise
OPSET = 17
#: the input name of every exported graph
INPUT_NAME = "x"
OUTPUT_NAME = "y"
#: bump when this module starts to write different bytes for the same input
FORMAT_VERSION = 1


def export_arch(
    space: SearchSpace,
    arch: Arch,
    *,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
    opset: int = OPSET,
) -> ExportedModel:
    """The ONNX model of ``arch``, from the cache when it has been exported before.

    ``cache_dir`` defaults to :func:`default_cache_dir`. Raises UnknownArch
    for an arch outside the space and ExportError when export or validation
    fails.
    """
    encoding = space.encode(arch)
    identity = space.network_identity()  # what the bytes depend on (SearchSpace docstring)
    description = _description("arch", space, identity, encoding, opset)
    return _export(
        description,
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
) -> ExportedModel:
    """The ONNX model of one block alone (``space.build_block``), cached like :func:`export_arch`.

    The weights' seed depends on the block key only, so a block gives the
    same bytes whichever configuration of the space exports it. Raises
    UnknownBlock for a block the space cannot build and ExportError.
    """
    key = block.key
    description = _description("block", space, space.name, key, opset)
    return _export(
        description,
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
    kind: str, space: SearchSpace, identity: str, text: str, opset: int
) -> dict[str, Any]:
    return {
        "kind": kind,
        "space": identity,
        "space_version": space.version,
        "text": text,
        "exporter": "torchscript",
        "opset": opset,
        "torch": _torch_version(),
        "format": FORMAT_VERSION,
    }


def _export(
    description: dict[str, Any],
    *,
    encoding: str,
    identity: str,
    build: Callable[[], tuple[Any, tuple[int, ...]]],
    cache_dir: Path | str | None,
    use_cache: bool,
    opset: int,
) -> ExportedModel:
    cache = OnnxCache(Path(cache_dir) if cache_dir is not None else default_cache_dir())
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
                data, hashlib.sha256(data).hexdigest(), INPUT_NAME, tuple(meta["input_shape"]),
                encoding, identity, cached=True, path=cache.path(key),
            )  # fmt: skip

    module, input_shape = build()
    data = _to_onnx(module, input_shape, opset)
    meta = {"description": description, "input_shape": list(input_shape)}
    path = cache.put(key, data, meta) if use_cache else None
    return ExportedModel(
        data, hashlib.sha256(data).hexdigest(), INPUT_NAME, tuple(input_shape), encoding,
        identity, cached=False, path=path,
    )  # fmt: skip


def _to_onnx(module: Any, input_shape: tuple[int, ...], opset: int) -> bytes:
    """Export with the TorchScript exporter and validate; raises ExportError."""
    import onnx
    import torch

    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated upstream but still the fast path.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                (torch.zeros(input_shape),),
                buffer,  # type: ignore[arg-type]  # the TorchScript path accepts a file object
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
                export_params=True,
                keep_initializers_as_inputs=False,
            )
    except Exception as exc:  # torch raises many unrelated types; all mean "cannot export"
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    data = buffer.getvalue()
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises its own ValidationError and protobuf DecodeError
        raise ExportError(f"exported ONNX is not valid: {exc}") from exc
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ExportError(f"exported ONNX refers to external data: {external[:3]}")
    return data
