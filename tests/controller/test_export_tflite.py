""".tflite export of archs and blocks (litert-torch): deterministic, cached, agrees with ONNX.

The outputs of each .tflite model, run in the real LiteRT interpreter, are compared with
onnxruntime on the ONNX export of the same arch or block (same weights): within 1e-3.
Conversions are slow (5-40 s each on the shared 2-core VM, plus ~40 s to import the
converter once), so the module converts few, small models and shares a cache.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from fleetnas.agent.model_format import detect_format
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.export import (
    TFLITE_EXTRA_HINT,
    ExportedModel,
    ExportError,
    converter_for,
    export_arch,
    export_block,
)
from fleetnas.controller.spaces import Block, MobileNetV3Space, NB201Space

pytestmark = pytest.mark.timeout(900)

TFLITE = agent_pb2.MODEL_FORMAT_TFLITE
NB201 = NB201Space(channels=4, cells_per_stage=1)
MBV3 = MobileNetV3Space(resolutions=(96,), width_mult=0.5, num_classes=10)
MAX_ABS_DIFF = 1e-3


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("tflite-cache")


def run_tflite(model: ExportedModel, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model.data, num_threads=1)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    assert inp["name"] == model.input_name and tuple(inp["shape"]) == model.input_shape
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_onnx(model: ExportedModel, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.data, options, providers=["CPUExecutionProvider"])
    return session.run(None, {model.input_name: x})[0]


def assert_agrees(tflite: ExportedModel, onnx: ExportedModel, seed: int) -> None:
    assert tflite.input_shape == onnx.input_shape
    x = np.random.default_rng(seed).standard_normal(onnx.input_shape).astype(np.float32)
    expected = run_onnx(onnx, x)
    got = run_tflite(tflite, x)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= MAX_ABS_DIFF


def test_an_arch_exports_as_tflite_that_agrees_with_onnxruntime(cache_dir: Path) -> None:
    arch = NB201.sample(random.Random(0))
    tflite = export_arch(NB201, arch, cache_dir=cache_dir, model_format=TFLITE)
    assert tflite.model_format == TFLITE and detect_format(tflite.data[:8]) == TFLITE
    assert tflite.encoding == NB201.encode(arch) and tflite.space == NB201.identity()
    assert tflite.path is not None and tflite.path.suffix == ".tflite"
    onnx = export_arch(NB201, arch, cache_dir=cache_dir)
    assert onnx.sha256 != tflite.sha256  # two models of one arch
    assert_agrees(tflite, onnx, seed=0)

    again = export_arch(NB201, arch, cache_dir=cache_dir, model_format=TFLITE)
    assert again.cached and again == tflite and again.input_name == tflite.input_name


def test_tflite_blocks_are_byte_identical_and_agree(cache_dir: Path) -> None:
    # an mbv3 block with hard-swish and squeeze-excite, and a plain conv block of nb201
    mbconv = Block.of("mbv3.mbconv", kernel=3, expand=3, c_in=16, c_out=16, stride=1, hw=12,
                      se=True, act="hswish")
    for space, block in ((MBV3, mbconv), (NB201, NB201.all_blocks()[0])):
        first = export_block(space, block, use_cache=False, model_format=TFLITE)
        second = export_block(space, block, cache_dir=cache_dir, model_format=TFLITE)
        assert first.data == second.data and first.sha256 == second.sha256
        assert not second.cached and export_block(
            space, block, cache_dir=cache_dir, model_format=TFLITE).cached
        assert_agrees(second, export_block(space, block, cache_dir=cache_dir), seed=1)


def test_the_onnx_cache_key_is_unchanged_by_the_tflite_converter() -> None:
    assert converter_for(agent_pb2.MODEL_FORMAT_ONNX).identity(17) == {
        "exporter": "torchscript", "opset": 17}
    assert converter_for(TFLITE).identity(17)["exporter"] == "litert-torch"
    with pytest.raises(ExportError, match="cannot export unrecognized models; formats: ONNX, TFLite"):
        converter_for(agent_pb2.MODEL_FORMAT_UNRECOGNIZED)


def test_without_the_converter_the_error_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['litert_torch'] = None  # as if the tflite-export extra were missing\n"
        "from fleetnas.api.v1 import agent_pb2\n"
        "from fleetnas.controller.export import ConverterMissing, export_block\n"
        "from fleetnas.controller.spaces import NB201Space\n"
        "space = NB201Space(channels=4, cells_per_stage=1)\n"
        "try:\n"
        f"    export_block(space, space.all_blocks()[0], cache_dir={str(tmp_path)!r},\n"
        "                 model_format=agent_pb2.MODEL_FORMAT_TFLITE)\n"
        "except ConverterMissing as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert TFLITE_EXTRA_HINT in out
    assert not list(tmp_path.glob("*.tflite"))
