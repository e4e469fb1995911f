"""Small .tflite models built with LiteRT's own flatbuffer schema (no converter, no TensorFlow).

Deterministic: the same arguments give the same bytes (and sha256).
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema


def _float_tensor(tensors: list, buffers: list, name: str, shape: list[int],
                  data: np.ndarray | None = None) -> int:
    buffer = schema.BufferT()
    if data is not None:
        # a uint8 array, which the schema's Pack writes in one go (a list goes byte by byte)
        buffer.data = np.frombuffer(np.ascontiguousarray(data, np.float32).tobytes(), np.uint8)
    buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = name, shape, schema.TensorType.FLOAT32
    tensor.buffer = len(buffers) - 1
    tensors.append(tensor)
    return len(tensors) - 1


def fc_chain(width: int = 64, depth: int = 2, seed: int = 0) -> bytes:
    """``depth`` × FULLY_CONNECTED [width, width] + ReLU; input ``x`` [1, width] float32."""
    rng = np.random.default_rng(seed)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    tensors: list = []
    buffers: list = [schema.BufferT()]  # buffer 0: the empty sentinel
    x = current = _float_tensor(tensors, buffers, "x", [1, width])
    operators = []
    for i in range(depth):
        weights = rng.standard_normal((width, width)) / np.sqrt(width)
        w = _float_tensor(tensors, buffers, f"w{i}", [width, width], weights)
        b = _float_tensor(tensors, buffers, f"b{i}", [width], np.zeros(width))
        y = _float_tensor(tensors, buffers, f"y{i}", [1, width])
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [current, w, b], [y]
        op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = schema.ActivationFunctionType.RELU
        op.builtinOptions = options
        operators.append(op)
        current = y
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = tensors, [x], [current]
    graph.operators, graph.name = operators, "main"
    model = schema.ModelT()
    model.version, model.description = 3, "fleetnas test fc_chain"
    model.operatorCodes, model.subgraphs, model.buffers = [code], [graph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
