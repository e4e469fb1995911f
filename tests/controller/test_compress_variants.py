"""Precision variants of real exports (NB201, mbv3 archs, an mbv3 block): they run, are detected
as made, keep the network's counts, are deterministic, cached, and fail precisely."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from fleetnas.controller.compress import (
    GENE_PRECISIONS,
    Calibration,
    CalibrationError,
    Fp16Options,
    InvalidModel,
    NotCompressible,
    Precision,
    RandomCalibrationWarning,
    StaticQuantOptions,
    TensorSpec,
    UnknownPrecision,
    calibration_from_arrays,
    describe_model,
    detect_precision,
    make_variant,
    quantize_int8_static,
    random_calibration,
)
from fleetnas.controller.export import export_arch, export_block
from fleetnas.controller.spaces import Block, MobileNetV3Space, NB201Space, SearchSpace

NB201 = NB201Space(cells_per_stage=1, channels=8)
NB201_ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
MBV3 = MobileNetV3Space(resolutions=(32,), width_mult=0.25, num_classes=10)
MBV3_ARCH = "r32|k3e3,k3e3|k5e3,k3e3|k3e4,k3e3|k3e3,k7e3|k3e6,k3e3"
SPACES: dict[str, tuple[SearchSpace, str]] = {"nb201": (NB201, NB201_ARCH), "mbv3": (MBV3, MBV3_ARCH)}


def _calibration(data: bytes, seed: int = 0) -> Calibration:
    return random_calibration(describe_model(data).inputs, samples=4, seed=seed, warn=False)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    cache = tmp_path_factory.mktemp("onnx")
    return {
        name: export_arch(space, space.decode(arch), cache_dir=cache).onnx_bytes
        for name, (space, arch) in SPACES.items()
    }


@pytest.fixture(scope="module")
def variants(exports: dict[str, bytes]) -> dict[tuple[str, Precision], bytes]:
    return {
        (name, p): make_variant(data, p, calibration=_calibration(data)).onnx_bytes
        for name, data in exports.items()
        for p in GENE_PRECISIONS
    }


def _run(data: bytes) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    x = np.random.default_rng(1).standard_normal(spec.shape).astype(np.float32)
    return np.asarray(session.run(None, {spec.name: x})[0])


@pytest.mark.parametrize("precision", GENE_PRECISIONS, ids=str)
@pytest.mark.parametrize("space", sorted(SPACES))
def test_variant_runs_and_is_detected_as_made(
    space: str, precision: Precision, exports: dict[str, bytes],
    variants: dict[tuple[str, Precision], bytes],
) -> None:  # fmt: skip
    data = variants[(space, precision)]
    out, ref = _run(data), _run(exports[space])
    assert out.shape == ref.shape and out.dtype == np.float32  # inputs/outputs stay float32
    assert np.isfinite(out).all()
    assert detect_precision(data).precision is precision
    search_space, arch = SPACES[space]
    info = describe_model(data)
    assert info.flops == search_space.count_flops(search_space.decode(arch))
    assert [s.dims for s in info.inputs] == [(1, 3, 32, 32)]


@pytest.mark.parametrize("precision", GENE_PRECISIONS, ids=str)
def test_variants_keep_the_networks_params(
    precision: Precision, exports: dict[str, bytes], variants: dict[tuple[str, Precision], bytes]
) -> None:
    # mbv3's BatchNorms all fold into convolutions, so every variant holds the same weights.
    assert describe_model(variants[("mbv3", precision)]).params == describe_model(exports["mbv3"]).params


def test_fp32_is_the_identity_and_fp16_is_close(
    exports: dict[str, bytes], variants: dict[tuple[str, Precision], bytes]
) -> None:
    assert variants[("mbv3", Precision.FP32)] == exports["mbv3"]
    ref, half = _run(exports["mbv3"]), _run(variants[("mbv3", Precision.FP16)])
    # float16 keeps ~3 significant digits per op; a 20-layer net stays within 1% of the range
    assert np.abs(ref - half).max() <= 0.01 * (np.abs(ref).max() + 1e-6)
    onnx.checker.check_model(onnx.load_from_string(variants[("mbv3", Precision.FP16)]))


@pytest.mark.parametrize("precision", [Precision.FP16, Precision.INT8, Precision.INT8_DYNAMIC], ids=str)
def test_the_same_input_gives_the_same_bytes(
    precision: Precision, exports: dict[str, bytes], variants: dict[tuple[str, Precision], bytes]
) -> None:
    data = exports["nb201"]
    again = make_variant(data, precision, calibration=_calibration(data))  # a second, fresh run
    assert again.sha256 == hashlib.sha256(variants[("nb201", precision)]).hexdigest()


def test_other_calibration_data_give_another_int8_model(exports: dict[str, bytes]) -> None:
    data = exports["nb201"]
    a = make_variant(data, "int8", calibration=_calibration(data, seed=0))
    b = make_variant(data, "int8", calibration=_calibration(data, seed=1))
    assert a.calibration_sha256 != b.calibration_sha256
    assert a.sha256 != b.sha256


def test_a_block_quantizes_for_a_per_precision_lut() -> None:
    block = Block.of("mbv3.mbconv", kernel=3, expand=3, c_in=8, c_out=8, stride=1, hw=8,
                     se=True, act="hswish")  # fmt: skip
    data = export_block(MobileNetV3Space(), block, use_cache=False).onnx_bytes
    int8 = make_variant(data, Precision.INT8, calibration=_calibration(data))
    assert detect_precision(int8.onnx_bytes).precision is Precision.INT8
    assert _run(int8.onnx_bytes).shape == (1, 8, 8, 8)


def test_int8_without_calibration_warns_and_says_so(exports: dict[str, bytes]) -> None:
    with pytest.warns(RandomCalibrationWarning, match="calibrated on random normal data, not on your data"):
        variant = make_variant(exports["nb201"], "int8")
    assert variant.random_calibration
    assert variant.calibration_source == "random normal data (seed 0)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when the data are the user's
        given = make_variant(
            exports["nb201"], "int8",
            calibration=calibration_from_arrays(
                {"x": np.ones((2, 3, 32, 32), np.float32)},
                describe_model(exports["nb201"]).inputs, source="test",
            ),
        )  # fmt: skip
    assert not given.random_calibration and given.calibration_source == "test"


def test_variants_are_cached_by_everything_that_makes_them(
    exports: dict[str, bytes], tmp_path: Path
) -> None:
    data = exports["nb201"]
    first = make_variant(data, "int8-dynamic", cache_dir=tmp_path)
    second = make_variant(data, "int8-dynamic", cache_dir=tmp_path)
    assert (first.cached, second.cached) == (False, True)
    assert second.onnx_bytes == first.onnx_bytes and second == first
    assert not make_variant(data, "fp16", cache_dir=tmp_path).cached
    other = make_variant(
        data, "int8", calibration=_calibration(data), cache_dir=tmp_path,
        options=StaticQuantOptions(reduce_range=True),
    )  # fmt: skip
    assert not other.cached and other.description["options"]["reduce_range"] is True


def test_a_quantized_model_is_not_quantized_again(
    variants: dict[tuple[str, Precision], bytes],
) -> None:
    int8 = variants[("nb201", Precision.INT8)]
    for precision in GENE_PRECISIONS:
        with pytest.raises(NotCompressible, match=r"the model is already int8 \(\d+ QuantizeLinear.*start from its float32 original"):
            make_variant(int8, precision, calibration=_calibration(int8))


def test_a_model_with_nothing_to_quantize_says_so() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    relu = data.SerializeToString()
    for precision in (Precision.INT8, Precision.INT8_DYNAMIC):
        with pytest.raises(NotCompressible, match=r"changed nothing to int8.*no ops it converts"):
            make_variant(relu, precision, calibration=_calibration(relu))


def test_calibration_that_does_not_fit_is_refused(exports: dict[str, bytes]) -> None:
    data = exports["nb201"]
    small = calibration_from_arrays(
        {"x": np.zeros((1, 3, 16, 16), np.float32)},
        [TensorSpec("x", (1, 3, 16, 16), "float32")], source="small.npz",
    )  # fmt: skip
    with pytest.raises(CalibrationError, match=r"from small.npz: input 'x' is float32 \[1, 3, 16, 16\]; the model takes float32 \[1, 3, 32, 32\]"):
        quantize_int8_static(data, small)
    renamed = calibration_from_arrays(
        {"image": np.zeros((1, 3, 32, 32), np.float32)},
        [TensorSpec("image", (1, 3, 32, 32), "float32")], source="t",
    )  # fmt: skip
    with pytest.raises(CalibrationError, match=r"feeds \['image'\]; the model's inputs are \['x'\]"):
        make_variant(data, "int8", calibration=renamed)


def test_bad_requests_get_precise_errors(exports: dict[str, bytes]) -> None:
    with pytest.raises(UnknownPrecision, match="unknown precision 'int4'"):
        make_variant(exports["nb201"], "int4")
    with pytest.raises(ValueError, match="options for int8 must be StaticQuantOptions, got Fp16Options"):
        make_variant(exports["nb201"], "int8", options=Fp16Options())
    with pytest.raises(ValueError, match="activation_type='int4'"):
        StaticQuantOptions(activation_type="int4")
    with pytest.raises(InvalidModel, match="not an ONNX model"):
        make_variant(b"\x08\x07 not a model \xff", "fp16")
    broken = onnx.load_from_string(exports["nb201"])
    broken.graph.node[0].input[0] = "nowhere"
    with pytest.raises(InvalidModel, match="the ONNX model is not valid"):
        make_variant(broken.SerializeToString(), "int8-dynamic")
