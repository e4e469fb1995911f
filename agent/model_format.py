"""The format of a model, detected from its first bytes (never from a name).

* **TFLite**: a FlatBuffer whose file identifier, bytes 4-8, is ``TFL3``
  (the schema's ``file_identifier``; LiteRT checks the same bytes).
* **ONNX**: a protobuf ``ModelProto``. Protobuf has no magic number, so the
  test is that the first byte is the tag of a ``ModelProto`` field with its
  wire type (serializers write fields in number order, so real models start
  with ``ir_version``, tag ``0x08``). Random bytes pass this test about one
  time in twenty; onnxruntime then refuses them with MODEL_INVALID, as before.
* Anything else (including no bytes) is ``MODEL_FORMAT_UNRECOGNIZED``.

:class:`FormatCache` remembers the format of each cached model so that
``HasModels`` reads a model's head at most once per agent lifetime.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fleetnas.api.v1 import agent_pb2

HEAD_BYTES = 8
TFLITE_IDENTIFIER = b"TFL3"
# First bytes of onnx.ModelProto fields (field number << 3 | wire type), from onnx.proto3:
# ir_version 1 varint, producer_name 2, producer_version 3, domain 4 (bytes), model_version
# 5 varint, doc_string 6, graph 7, opset_import 8, metadata_props 14 (bytes); training_info 20
# and functions 25 have two-byte tags starting 0xa2 / 0xca.
_ONNX_FIRST_BYTES = frozenset({0x08, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA})

FORMAT_NAMES: dict[int, str] = {
    agent_pb2.MODEL_FORMAT_ONNX: "ONNX",
    agent_pb2.MODEL_FORMAT_TFLITE: "TFLite",
    agent_pb2.MODEL_FORMAT_UNRECOGNIZED: "unrecognized",
    agent_pb2.MODEL_FORMAT_UNSPECIFIED: "unspecified",
}


def detect_format(head: bytes) -> int:
    """The ``ModelFormat`` of a model whose first bytes are ``head`` (at least 8 when the
    model has them)."""
    if len(head) >= HEAD_BYTES and head[4:8] == TFLITE_IDENTIFIER:
        return agent_pb2.MODEL_FORMAT_TFLITE
    if head and head[0] in _ONNX_FIRST_BYTES:
        return agent_pb2.MODEL_FORMAT_ONNX
    return agent_pb2.MODEL_FORMAT_UNRECOGNIZED


def format_of_file(path: Path) -> int:
    """The format of the model stored at ``path`` (reads its first bytes). OSError if unreadable."""
    with open(path, "rb") as f:
        return detect_format(f.read(HEAD_BYTES))


def format_name(model_format: int) -> str:
    return FORMAT_NAMES.get(model_format, f"format {model_format}")


class FormatCache:
    """sha256 -> ModelFormat for models of the agent's cache. Thread-safe.

    A model's bytes never change under its hash, so an entry never goes
    stale; an evicted model's entry is harmless (it answers only for a hash
    that is in the store).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._formats: dict[str, int] = {}

    def remember(self, sha256: str, model_format: int) -> None:
        with self._lock:
            self._formats[sha256] = model_format

    def get(self, sha256: str, path: Path) -> int:
        """The format of model ``sha256`` stored at ``path``, read once. OSError if unreadable."""
        with self._lock:
            known = self._formats.get(sha256)
        if known is not None:
            return known
        found = format_of_file(path)
        self.remember(sha256, found)
        return found
