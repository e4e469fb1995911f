"""Precision detection from a graph (QDQ, QLinear, dynamic, fp16, mixed), and params/MAC counts."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fleetnas.controller.compress import (
    InvalidModel,
    Precision,
    describe_model,
    detect_precision,
)
from tests import onnx_models

RNG = np.random.default_rng(0)


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], *,
           x_type: int = TensorProto.FLOAT, y_type: int = TensorProto.FLOAT,
           x_dims: list[int | str] | None = None) -> bytes:  # fmt: skip
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", x_type, x_dims or [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", y_type, ["n", "c", "h", "w"])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def _scale_zp(prefix: str, dtype: type = np.int8) -> list[onnx.TensorProto]:
    return [_init(f"{prefix}_s", np.array(0.05, np.float32)), _init(f"{prefix}_zp", np.array(0, dtype))]


def qdq_conv() -> bytes:
    """x -> Q -> DQ -> Conv(DQ(int8 weight)) -> y: static int8 in QDQ format."""
    w = RNG.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_zp"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_s", "w_zp"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd", "b"], ["y"], kernel_shape=[3, 3]),
    ]
    inits = [_init("w", w), _init("b", np.zeros(3, np.float32)), *_scale_zp("x"), *_scale_zp("w")]
    return _model(nodes, inits)


def qlinear_conv() -> bytes:
    """QLinearConv on uint8 input (QOperator format)."""
    w = RNG.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)
    nodes = [helper.make_node(
        "QLinearConv", ["x", "x_s", "x_zp", "w", "w_s", "w_zp", "y_s", "y_zp", "b"], ["y"],
        kernel_shape=[3, 3],
    )]  # fmt: skip
    inits = [_init("w", w), _init("b", np.zeros(3, np.int32)), *_scale_zp("x", np.uint8),
             *_scale_zp("w"), *_scale_zp("y", np.uint8)]  # fmt: skip
    for t in inits:
        if t.name.endswith("_s"):
            t.CopyFrom(_init(t.name, np.array(0.05, np.float32)))
    return _model(nodes, inits, x_type=TensorProto.UINT8, y_type=TensorProto.UINT8)


def conv_integer() -> bytes:
    """DynamicQuantizeLinear + ConvInteger: dynamic int8."""
    w = RNG.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xzp"]),
        helper.make_node("ConvInteger", ["xq", "w", "xzp", "w_zp"], ["yi"], kernel_shape=[3, 3]),
        helper.make_node("Cast", ["yi"], ["yf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xs", "w_s"], ["scale"]),
        helper.make_node("Mul", ["yf", "scale"], ["y"]),
    ]
    return _model(nodes, [_init("w", w), *_scale_zp("w")])


def fp16_conv() -> bytes:
    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float16)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])]
    return _model(nodes, [_init("w", w)], x_type=TensorProto.FLOAT16, y_type=TensorProto.FLOAT16)


def half_quantized() -> bytes:
    """One conv on DQ'd int8 weights, the next on float32 weights: mixed."""
    w8 = RNG.integers(-100, 100, (2, 2, 1, 1)).astype(np.int8)
    w32 = RNG.standard_normal((2, 2, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["w8", "w_s", "w_zp"], ["wd"]),
        helper.make_node("Conv", ["x", "wd"], ["h"]),
        helper.make_node("Conv", ["h", "w32"], ["y"]),
    ]
    return _model(nodes, [_init("w8", w8), _init("w32", w32), *_scale_zp("w")])


@pytest.mark.parametrize(
    ("build", "precision", "counts"),
    [
        (qdq_conv, Precision.INT8,
         {"quantize_linear": 1, "dequantize_linear": 2, "weighted_int8": 1}),
        (qlinear_conv, Precision.INT8, {"qlinear_ops": 1}),
        (conv_integer, Precision.INT8_DYNAMIC, {"integer_ops": 2}),
        (fp16_conv, Precision.FP16, {"fp16_initializers": 1, "weighted_fp16": 1}),
        (half_quantized, Precision.MIXED,
         {"dequantize_linear": 1, "weighted_int8": 1, "weighted_fp32": 1}),
        (lambda: onnx_models.conv_net(4, 8, 2), Precision.FP32, {"weighted_fp32": 2}),
        (lambda: onnx_models.mlp(16, 3), Precision.FP32, {"weighted_fp32": 3}),
    ],
)  # fmt: skip
def test_precision_and_evidence(build: object, precision: Precision, counts: dict[str, int]) -> None:
    found = detect_precision(build())  # type: ignore[operator]
    assert found.precision is precision
    evidence = vars(found.evidence)
    assert {k: v for k, v in evidence.items() if v} == counts


def test_mixed_names_every_precision_it_saw() -> None:
    found = detect_precision(half_quantized())
    assert found.signals == (Precision.INT8, Precision.FP32)
    assert found.evidence.summary() == (
        "1 DequantizeLinear, 1 weighted ops on int8 weights, 1 weighted ops on float32 weights"
    )


def test_a_graph_without_weighted_ops_is_fp32() -> None:
    data = _model([helper.make_node("Relu", ["x"], ["y"])], [])
    found = detect_precision(data)
    assert found.precision is Precision.FP32
    assert found.evidence.summary() == "no weighted ops, nothing quantized"


def test_a_matmul_of_two_activations_is_not_a_weighted_op() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["x", "xt"], ["y"])]  # fmt: skip
    assert not any(vars(detect_precision(_model(nodes, [])).evidence).values())


def test_params_and_macs_of_known_graphs() -> None:
    conv = describe_model(onnx_models.conv_net(4, 8, 2))
    assert conv.params == 2 * (4 * 4 * 9 + 4)
    assert conv.flops == 2 * (4 * 4 * 9) * 8 * 8
    mlp = describe_model(onnx_models.mlp(16, 3))
    assert (mlp.params, mlp.flops) == (3 * (16 * 16 + 16), 3 * 16 * 16)


def test_quantization_parameters_are_not_params() -> None:
    # 54 int8 weights + 3 int32/float biases; the scales and zero points are not weights
    assert describe_model(qdq_conv()).params == 54 + 3
    assert describe_model(qlinear_conv()).params == 54 + 3
    assert describe_model(conv_integer()).params == 54
    assert describe_model(qdq_conv()).flops == 3 * 4 * 4 * (2 * 3 * 3)


def test_symbolic_batch_makes_macs_unknown_until_shapes_are_given() -> None:
    data = onnx_models.dynamic_batch_mlp(8)
    info = describe_model(data)
    assert info.flops is None
    assert info.params == 64
    assert info.inputs[0].dims == ("batch", 8) and not info.inputs[0].fixed
    assert describe_model(data, input_shapes={"x": (4, 8)}).flops == 4 * 8 * 8
    with pytest.raises(InvalidModel, match=r"no graph input named 'z'; inputs are \['x'\]"):
        describe_model(data, input_shapes={"z": (4, 8)})
    with pytest.raises(InvalidModel, match="has 2 dims, the given shape"):
        describe_model(data, input_shapes={"x": (4, 8, 1)})


def test_model_info_describes_the_file() -> None:
    data = onnx_models.conv_net(4, 8, 2)
    info = describe_model(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size_bytes == len(data)
    assert info.opset == 17
    assert [(s.name, s.dims, s.dtype) for s in info.inputs] == [("x", (1, 4, 8, 8), "float32")]
    assert [(s.name, s.dims) for s in info.outputs] == [("y", (1, 4, 1, 1))]
    assert info.precision.precision is Precision.FP32


def test_unreadable_models_get_precise_errors() -> None:
    with pytest.raises(InvalidModel, match=r"empty \(0 bytes\)"):
        detect_precision(b"")
    with pytest.raises(InvalidModel, match="not an ONNX model"):
        detect_precision(b"\x08\x07garbage that is not protobuf\xff\xff")
    with pytest.raises(InvalidModel, match="expected ONNX model bytes, got str"):
        detect_precision("model.onnx")  # type: ignore[arg-type]
    model = onnx.load_from_string(onnx_models.conv_net(4, 8, 1))
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="weights.bin")
    with pytest.raises(InvalidModel, match=r"external data files \(\['w0'\]\)"):
        describe_model(model.SerializeToString())
