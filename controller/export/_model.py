"""The result of an export."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.api.v1 import agent_pb2


class ExportError(RuntimeError):
    """torch could not export the network, or the model it wrote is not valid."""


class ConverterMissing(ExportError):
    """The converter of the asked format is not installed (the message names the extra)."""


@dataclass(frozen=True)
class ExportedModel:
    """One exported model: ONNX, or TFLite (``model_format``, a ``ModelFormat``).

    ``data`` are the model's bytes (``onnx_bytes`` is the former name, kept
    for callers of the ONNX-only API). ``encoding`` is the arch encoding, or
    the block key for a block; ``space`` is the space's network identity for an
    arch (``SearchSpace.network_identity``), its identity for a block. ``cached``
    and ``path`` say where the bytes came from and do not take part in equality.
    """

    data: bytes = field(repr=False)
    sha256: str
    input_name: str
    input_shape: tuple[int, ...]
    encoding: str
    space: str
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX
    cached: bool = field(default=False, compare=False)
    path: Path | None = field(default=None, compare=False)

    @property
    def onnx_bytes(self) -> bytes:
        """The model's bytes (the name from when every export was ONNX)."""
        return self.data
