"""The GPU plan on any machine: CPU providers keep the host path unchanged; CUDA and TensorRT
get device binding, provider options and an engine cache keyed by what shapes an engine."""

from __future__ import annotations

from pathlib import Path

from fleetnas.agent.backends._base import LoadContext
from fleetnas.agent.backends._onnxruntime import placement_warnings
from fleetnas.agent.backends._ort_gpu import Device, engine_key, plan, tensorrt_version
from fleetnas.api.v1 import agent_pb2

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def s(*providers: str, fp16: bool = False) -> agent_pb2.BenchmarkSettings:
    return agent_pb2.BenchmarkSettings(providers=list(providers), fp16=fp16)


def test_cpu_providers_run_on_host_tensors_with_plain_names() -> None:
    for providers in ([CPU], ["AzureExecutionProvider", CPU], []):
        p = plan(s(*providers), LoadContext("model", "ab" * 32, Path("/nowhere")), "1.32.0")
        assert p.device is None and p.providers == providers
        assert p.engine_dir is None and p.engine_cache_hit is None


def test_cuda_binds_on_device_0_with_its_options() -> None:
    p = plan(s(CUDA, CPU), LoadContext("model", "ab" * 32, None), "1.32.0")
    assert p.device == Device("cuda", 0) and p.device.name == "cuda:0"
    assert p.providers == [(CUDA, {"device_id": "0"}), CPU]
    assert p.engine_cache_hit is None


def test_tensorrt_gets_an_engine_folder_per_model_options_and_version(tmp_path: Path) -> None:
    context = LoadContext("model", "ab" * 32, tmp_path)
    first = plan(s(TRT, CUDA), context, "1.32.0")
    assert first.device is not None and first.engine_dir is not None
    assert first.engine_dir.parent == tmp_path and first.engine_dir.is_dir()
    assert first.engine_cache_hit is False
    name, options = first.providers[0]
    assert name == TRT and options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(first.engine_dir)
    assert options["trt_fp16_enable"] == "False"
    (first.engine_dir / "TensorrtExecutionProvider_TRTKernel_x.engine").write_bytes(b"e")
    assert plan(s(TRT, CUDA), context, "1.32.0").engine_cache_hit is True  # the same folder
    assert plan(s(TRT, fp16=True), context, "1.32.0").engine_dir != first.engine_dir
    other_model = LoadContext("model", "cd" * 32, tmp_path)
    assert plan(s(TRT), other_model, "1.32.0").engine_dir != first.engine_dir
    no_cache = plan(s(TRT), LoadContext("model"), "1.32.0")
    assert no_cache.engine_dir is None and "trt_engine_cache_path" not in no_cache.providers[0][1]


def test_the_engine_key_covers_model_shaping_options_and_tensorrt_version() -> None:
    base = engine_key("ab" * 32, {"device_id": "0", "trt_fp16_enable": "False"}, "10.3.0")
    assert base == engine_key("ab" * 32, {"trt_fp16_enable": "False", "device_id": "0",
                                          "trt_engine_cache_path": "/x"}, "10.3.0")  # fmt: skip
    assert base != engine_key("ab" * 32, {"device_id": "0", "trt_fp16_enable": "True"}, "10.3.0")
    assert base != engine_key("ab" * 32, {"device_id": "0", "trt_fp16_enable": "False"}, "8.6.1")
    assert base != engine_key("cd" * 32, {"device_id": "0", "trt_fp16_enable": "False"}, "10.3.0")


def test_tensorrt_version_is_read_or_unknown() -> None:
    import ctypes.util
    import importlib.util
    import re

    found = importlib.util.find_spec("tensorrt") or ctypes.util.find_library("nvinfer")
    if found:
        assert re.fullmatch(r"\d+\.\d+\.\d+", tensorrt_version())
    else:
        assert tensorrt_version() == "unknown"


def test_placement_warnings_name_a_cpu_fallback_of_a_gpu_model() -> None:
    (fallback,) = placement_warnings([CUDA, CPU], {CUDA: 40, CPU: 2})
    assert "2 of 42 nodes fell back to CPUExecutionProvider" in fallback
    (split,) = placement_warnings(["AzureExecutionProvider", CPU], {CPU: 5, "X": 1})
    assert "split the model's nodes" in split
    assert placement_warnings([CUDA], {CUDA: 10}) == []
    assert placement_warnings([CPU], {CPU: 10}) == []
