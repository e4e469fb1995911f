"""Generate the LiteRT paired-method reference model, ``agent/assets/reference.tflite``.

The same network as ``reference.onnx`` (``make_reference_model.py``), with the
same weights, laid out the TFLite way: input ``x`` NHWC ``[1, 128, 128, 3]``;
an explicit PAD then a VALID stride-2 CONV_2D for the stem (TFLite's SAME
padding would pad 0/1 where ONNX pads 1/1); per block a 1x1 CONV_2D + RELU,
a 3x3 DEPTHWISE_CONV_2D + RELU (SAME, stride 1: pads 1/1 like ONNX), a 1x1
CONV_2D and an ADD; MEAN over H and W; FULLY_CONNECTED to 10 classes. Fed
the NHWC transpose of an input, it computes what the ONNX reference computes
on that input (a test checks it against onnxruntime).

No converter: the flatbuffer is built with the TFLite schema's object API
that ``ai-edge-litert`` ships (``schema_py_generated``), so the bytes depend
on the recipe and the flatbuffers serializer only: the asset's sha256 is the
reference's identity, and calibrations are keyed by it.

Usage::

    python scripts/make_reference_tflite.py            # (re)write the asset
    python scripts/make_reference_tflite.py --check    # exit 1 if the asset is stale
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as S
from make_reference_model import (
    BLOCKS,
    CLASSES,
    INPUT_SHAPE,
    STEM_CHANNELS,
    asset_main,
    hash_weights,
)
from tflite_graph import Graph

ASSET = Path(__file__).resolve().parent.parent / "agent" / "assets" / "reference.tflite"
RELU = S.ActivationFunctionType.RELU
NONE = S.ActivationFunctionType.NONE
DESCRIPTION = "fleetnas paired-method reference model v1 (scripts/make_reference_tflite.py)"


def _op(g: Graph, builtin: int, inputs: list[int], out_shape: list[int], name: str,
        options_type: int, options: object) -> int:  # fmt: skip
    """An operator with a new output tensor ``name``; the output's index."""
    out = g.tensor(name, out_shape)
    g.op(builtin, inputs, [out], options_type, options)
    return out


class _Convs:
    """The ONNX script's convolutions in order (same salts, same weights), in TFLite layout."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.salt = 0

    def conv(self, x: int, hw: int, cin: int, cout: int, k: int, *, stride: int = 1,
             depthwise: bool = False, relu: bool) -> int:  # fmt: skip
        self.salt += 1
        g, n = self.g, self.salt
        group = cin if depthwise else 1
        w = hash_weights(n, (cout, cin // group, k, k), (cin // group) * k * k)
        bias = g.tensor(f"conv{n}.b", [cout], np.zeros(cout, np.float32))
        if depthwise:  # ONNX [C, 1, kh, kw] -> TFLite [1, kh, kw, C]
            weights = g.tensor(f"conv{n}.w", [1, k, k, cout], w.transpose(1, 2, 3, 0))
            options = S.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
            builtin = S.BuiltinOperator.DEPTHWISE_CONV_2D
            options_type = S.BuiltinOptions.DepthwiseConv2DOptions
        else:  # ONNX [O, I, kh, kw] -> TFLite [O, kh, kw, I]
            weights = g.tensor(f"conv{n}.w", [cout, k, k, cin], w.transpose(0, 2, 3, 1))
            options = S.Conv2DOptionsT()
            builtin, options_type = S.BuiltinOperator.CONV_2D, S.BuiltinOptions.Conv2DOptions
        options.padding = S.Padding.VALID if stride > 1 else S.Padding.SAME
        options.strideH = options.strideW = stride
        options.dilationHFactor = options.dilationWFactor = 1
        options.fusedActivationFunction = RELU if relu else NONE
        out_hw = hw // stride
        return _op(g, builtin, [x, weights, bias], [1, out_hw, out_hw, cout], f"conv{n}",
                   options_type, options)  # fmt: skip


def build() -> bytes:
    """The reference model's serialized bytes (deterministic)."""
    g = Graph()
    convs = _Convs(g)
    _, cin, size, _ = INPUT_SHAPE
    x = g.tensor("x", [1, size, size, cin])
    pads = g.tensor("stem.pads", [4, 2], np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
                    dtype=S.TensorType.INT32)  # fmt: skip
    padded = _op(g, S.BuiltinOperator.PAD, [x, pads], [1, size + 2, size + 2, cin], "stem.pad",
                 S.BuiltinOptions.PadOptions, S.PadOptionsT())  # fmt: skip
    h = convs.conv(padded, size + 2, cin, STEM_CHANNELS, 3, stride=2, relu=True)
    hw = (size + 2 - 3) // 2 + 1
    for i, (c, expanded) in enumerate(BLOCKS):
        e = convs.conv(h, hw, c, expanded, 1, relu=True)
        d = convs.conv(e, hw, expanded, expanded, 3, depthwise=True, relu=True)
        p = convs.conv(d, hw, expanded, c, 1, relu=False)
        h = _op(g, S.BuiltinOperator.ADD, [h, p], [1, hw, hw, c], f"block{i}",
                S.BuiltinOptions.AddOptions, S.AddOptionsT())  # fmt: skip
    axes = g.tensor("pool.axes", [2], np.array([1, 2], np.int32), dtype=S.TensorType.INT32)
    pooled = _op(g, S.BuiltinOperator.MEAN, [h, axes], [1, STEM_CHANNELS], "pooled",
                 S.BuiltinOptions.ReducerOptions, S.ReducerOptionsT())  # fmt: skip
    head_w = hash_weights(999, (STEM_CHANNELS, CLASSES), STEM_CHANNELS)  # Gemm's [in, out]
    weights = g.tensor("head.w", [CLASSES, STEM_CHANNELS], head_w.T)
    bias = g.tensor("head.b", [CLASSES], np.zeros(CLASSES, np.float32))
    y = _op(g, S.BuiltinOperator.FULLY_CONNECTED, [pooled, weights, bias], [1, CLASSES], "y",
            S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT())  # fmt: skip
    return g.finish([x], [y], DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    return asset_main(__doc__ or "", ASSET, build, "make_reference_tflite.py", argv)


if __name__ == "__main__":
    raise SystemExit(main())
