"""What a user model file is, for the cost DB's ``user_models`` table: :func:`model_identity`.

ONNX models are read with :func:`describe_model`: the detected precision,
params, MACs ("FLOPs", the convention of ``describe_model``) and input specs.
When an input has a symbolic batch dim, MACs are counted at batch 1 (and stay
None when another dim is symbolic). ``.tflite`` models (a FlatBuffer with the
``TFL3`` identifier) are not parsed here: their precision is ``"unknown"``
and params, FLOPs and inputs are unknown (None, None, ``{}``); the agent
still measures them. Anything else is :class:`InvalidModel`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from fleetnas.agent.model_format import HEAD_BYTES, detect_format
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.compress._detect import ModelInfo, describe_model
from fleetnas.controller.compress._errors import InvalidModel


@dataclass(frozen=True)
class ModelIdentity:
    """A model file as the cost DB names it: ``format`` is ``"onnx"`` or ``"tflite"``;
    ``precision`` a :class:`Precision` value or ``"unknown"``; ``inputs`` maps each input
    to ``{"dims": [...], "dtype": ...}`` in graph order."""

    sha256: str
    size_bytes: int
    format: str
    precision: str
    params: int | None
    flops: int | None
    inputs: dict[str, Any] = field(default_factory=dict)


def _batch_one(info: ModelInfo, data: bytes) -> int | None:
    """MACs at batch 1 when only the first dims are symbolic; else None."""
    try:
        shapes = {spec.name: spec.shape(batch=1) for spec in info.inputs}
    except InvalidModel:
        return None
    return describe_model(data, input_shapes=shapes).flops


def model_identity(data: bytes) -> ModelIdentity:
    """The identity of the model ``data`` (see the module docstring); InvalidModel for
    bytes that are neither ONNX nor TFLite, or an ONNX model that cannot be read."""
    sha = hashlib.sha256(data).hexdigest()
    kind = detect_format(data[:HEAD_BYTES])
    if kind == agent_pb2.MODEL_FORMAT_TFLITE:
        return ModelIdentity(sha, len(data), "tflite", "unknown", None, None)
    if kind != agent_pb2.MODEL_FORMAT_ONNX:
        raise InvalidModel("not an ONNX or TFLite model (unrecognised first bytes)")
    info = describe_model(data)
    flops = info.flops if info.flops is not None else _batch_one(info, data)
    inputs = {s.name: {"dims": list(s.dims), "dtype": s.dtype} for s in info.inputs}
    return ModelIdentity(sha, len(data), "onnx", info.precision.precision.value, info.params,
                         flops, inputs)
