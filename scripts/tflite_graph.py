"""A tiny builder of TFLite flatbuffers by hand: no converter, no TensorFlow.

Used by ``make_reference_tflite.py`` (the agent's LiteRT reference model) and
by the tests' hostile and small models (``tests/tflite_models.py``). It
writes with the TFLite schema's object API that ``ai-edge-litert`` ships
(``schema_py_generated``) and ``flatbuffers``: the same graph gives the same
bytes.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S


class Graph:
    """One subgraph built in order: tensors (each with its buffer), operator codes, operators."""

    def __init__(self) -> None:
        self.tensors: list[S.TensorT] = []
        self.buffers: list[S.BufferT] = [S.BufferT()]  # buffer 0: the empty sentinel
        self.operators: list[S.OperatorT] = []
        self.codes: list[S.OperatorCodeT] = []

    def tensor(self, name: str, shape: list[int], data: np.ndarray | None = None, *,
               dtype: int = S.TensorType.FLOAT32, signature: list[int] | None = None) -> int:  # fmt: skip
        """A tensor (constant when ``data`` is given); its index."""
        t = S.TensorT()
        t.name, t.shape, t.type = name, shape, dtype
        if signature is not None:
            t.shapeSignature = signature
        buffer = S.BufferT()
        if data is not None:
            buffer.data = np.ascontiguousarray(data).tobytes()
        t.buffer = len(self.buffers)
        self.buffers.append(buffer)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def code(self, builtin: int, custom: str = "") -> int:
        """The index of the operator code for ``builtin`` (``custom``: a CUSTOM op's name)."""
        for i, known in enumerate(self.codes):
            if known.builtinCode == builtin and (known.customCode or "") == custom:
                return i
        code = S.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        if custom:
            code.customCode = custom
        self.codes.append(code)
        return len(self.codes) - 1

    def op(self, builtin: int, inputs: list[int], outputs: list[int], options_type: int = 0,
           options: object = None, *, custom: str = "") -> None:  # fmt: skip
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.code(builtin, custom), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        """The model's bytes, with the ``TFL3`` file identifier."""
        subgraph = S.SubGraphT()
        subgraph.tensors, subgraph.operators = self.tensors, self.operators
        subgraph.inputs, subgraph.outputs, subgraph.name = inputs, outputs, "main"
        model = S.ModelT()
        model.version, model.description = 3, description
        model.operatorCodes, model.subgraphs, model.buffers = self.codes, [subgraph], self.buffers
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
