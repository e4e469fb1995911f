"""The result of an export."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ExportError(RuntimeError):
    """torch could not export the network, or the ONNX it wrote is not valid."""


@dataclass(frozen=True)
class ExportedModel:
    """One exported ONNX model.

    ``encoding`` is the arch encoding, or the block key for a block; ``space``
    is the space's network identity for an arch (``SearchSpace.network_identity``),
    its identity for a block. ``cached`` and ``path`` say where the bytes came
    from and do not take part in equality.
    """

    onnx_bytes: bytes = field(repr=False)
    sha256: str
    input_name: str
    input_shape: tuple[int, ...]
    encoding: str
    space: str
    cached: bool = field(default=False, compare=False)
    path: Path | None = field(default=None, compare=False)
