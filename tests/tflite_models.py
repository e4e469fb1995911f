"""Small .tflite models built by hand (no converter, no TensorFlow) for tests.

Built with ``scripts/tflite_graph.py`` (the TFLite schema's object API that
``ai-edge-litert`` ships); deterministic bytes. Valid
models run on LiteRT 2.3.0; the hostile ones are structurally valid
flatbuffers that LiteRT refuses or crashes on:

* :func:`custom_op`: a CUSTOM op no resolver knows (refused at
  ``allocate_tensors``: "Encountered unresolved custom op");
* :func:`transpose_missing_perm`: a TRANSPOSE whose permutation input index
  is -1 (the "optional tensor" marker); LiteRT 2.3.0 segfaults in
  ``allocate_tensors`` (found by the LiteRT research's fuzzing).
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as S

from scripts.tflite_graph import Graph

DESCRIPTION = "fleetnas tests"


def add(width: int = 8) -> bytes:
    """y = x + x, input ``x`` float32 [1, width]."""
    m = Graph()
    x = m.tensor("x", [1, width])
    y = m.tensor("y", [1, width])
    m.op(S.BuiltinOperator.ADD, [x, x], [y], S.BuiltinOptions.AddOptions, S.AddOptionsT())
    return m.finish([x], [y], DESCRIPTION)


def dynamic_batch_add(width: int = 8) -> bytes:
    """:func:`add` with a dynamic batch dim (shape signature [-1, width])."""
    m = Graph()
    x = m.tensor("x", [1, width], signature=[-1, width])
    y = m.tensor("y", [1, width], signature=[-1, width])
    m.op(S.BuiltinOperator.ADD, [x, x], [y], S.BuiltinOptions.AddOptions, S.AddOptionsT())
    return m.finish([x], [y], DESCRIPTION)


def conv_net(channels: int, size: int, depth: int, seed: int = 0) -> bytes:
    """``depth`` × (CONV_2D 3×3 SAME + RELU), then MEAN over H, W: NHWC input ``x``
    [1, size, size, channels], output [1, channels]. ``seed`` changes weights, not cost."""
    rng = np.random.default_rng(seed)
    m = Graph()
    x = m.tensor("x", [1, size, size, channels])
    h = x
    for i in range(depth):
        w = (rng.standard_normal((channels, 3, 3, channels)) / np.sqrt(9 * channels))
        weights = m.tensor(f"w{i}", [channels, 3, 3, channels], w.astype(np.float32))
        bias = m.tensor(f"b{i}", [channels], np.zeros(channels, np.float32))
        out = m.tensor(f"c{i}", [1, size, size, channels])
        options = S.Conv2DOptionsT()
        options.padding = S.Padding.SAME
        options.strideH = options.strideW = options.dilationHFactor = options.dilationWFactor = 1
        options.fusedActivationFunction = S.ActivationFunctionType.RELU
        m.op(S.BuiltinOperator.CONV_2D, [h, weights, bias], [out], S.BuiltinOptions.Conv2DOptions,
             options)
        h = out
    axes = m.tensor("axes", [2], np.array([1, 2], np.int32), dtype=S.TensorType.INT32)
    y = m.tensor("y", [1, channels])
    m.op(S.BuiltinOperator.MEAN, [h, axes], [y], S.BuiltinOptions.ReducerOptions,
         S.ReducerOptionsT())
    return m.finish([x], [y], DESCRIPTION)


def custom_op() -> bytes:
    """y = FleetnasNoSuchOp(x): a CUSTOM op no LiteRT resolver has."""
    m = Graph()
    x = m.tensor("x", [1, 8])
    y = m.tensor("y", [1, 8])
    m.op(S.BuiltinOperator.CUSTOM, [x], [y], custom="FleetnasNoSuchOp")
    return m.finish([x], [y], DESCRIPTION)


def transpose_missing_perm() -> bytes:
    """A TRANSPOSE whose permutation input is -1; segfaults LiteRT 2.3.0's allocate_tensors."""
    m = Graph()
    x = m.tensor("x", [1, 8])
    y = m.tensor("y", [8, 1])
    m.op(S.BuiltinOperator.TRANSPOSE, [x, -1], [y], S.BuiltinOptions.TransposeOptions,
         S.TransposeOptionsT())
    return m.finish([x], [y], DESCRIPTION)
