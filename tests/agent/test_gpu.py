"""CUDA and TensorRT measured right, through a real agent: ``pytest -m gpu`` on a GPU machine.

Skipped, saying so, where onnxruntime has no CUDAExecutionProvider (a CPU
machine, or the CPU ``onnxruntime`` wheel): these need ``onnxruntime-gpu``
and an NVIDIA GPU. The CPU path's own checks (the plan, placement warnings,
no copies on the host) run everywhere: ``test_gpu_plan.py``.
"""

from __future__ import annotations

import statistics

import onnxruntime
import pytest

# the benches' bare baseline: the worker's protocol, written apart from the worker
from bench._agent_common import bare_gpu_median
from fleetnas.agent.settings import resolve_for_description
from fleetnas.api.v1 import agent_pb2
from tests import onnx_models
from tests.agent.conftest import StartAgent

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA not in onnxruntime.get_available_providers(),
                       reason="onnxruntime has no CUDAExecutionProvider here: the GPU tests need "
                              "onnxruntime-gpu and an NVIDIA GPU"),  # fmt: skip
]
MODELS = {
    "mlp": lambda: onnx_models.mlp(512, 4, seed=1),
    "conv": lambda: onnx_models.conv_net(32, 56, 4, seed=1),
    "deep-conv": lambda: onnx_models.conv_net(64, 64, 10, seed=1),
}
GPU_SETTINGS = dict(warmup_runs=20, min_runs=200, max_runs=5000, min_duration_s=1.0,
                    max_duration_s=5.0, timeout_s=300.0)  # fmt: skip


def settings(provider: str, **extra: object) -> agent_pb2.BenchmarkSettings:
    return agent_pb2.BenchmarkSettings(providers=[provider], **{**GPU_SETTINGS, **extra})


@pytest.mark.parametrize("model", sorted(MODELS))
def test_cuda_runs_bound_on_the_gpu_and_times_copies_apart(start_agent: StartAgent, model):
    _, client = start_agent(max_timeout_s=600.0)
    data = MODELS[model]()
    result = client.benchmark(client.ensure_model(data), settings(CUDA))
    assert result.provider == CUDA
    assert result.copies.device == "cuda:0" and len(result.copies.samples_ms) == 30
    assert result.copies.input_bytes > 0 and result.copies.output_bytes > 0
    assert result.copies.stats.median_ms > 0
    assert not result.HasField("engine_cache_hit")
    assert not [w for w in result.warnings if "fell back" in w], list(result.warnings)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_cuda_median_is_the_bare_io_bound_loops_within_2_percent(start_agent: StartAgent,
                                                                     model) -> None:
    _, client = start_agent(max_timeout_s=600.0)
    data = MODELS[model]()
    sha = client.ensure_model(data)
    resolved = resolve_for_description(settings(CUDA), client.describe())
    ratios = []
    for _ in range(3):  # interleaved: agent, then bare
        agent = client.benchmark(sha, settings(CUDA)).stats.median_ms
        bare = bare_gpu_median(data, resolved, [(CUDA, {"device_id": "0"})])
        ratios.append(agent / bare)
    assert statistics.median(ratios) == pytest.approx(1.0, abs=0.02), ratios


@pytest.mark.parametrize("model", sorted(MODELS))
def test_tensorrt_builds_once_then_loads_its_cached_engine(start_agent: StartAgent, model):
    server, client = start_agent(max_timeout_s=600.0)
    sha = client.ensure_model(MODELS[model]())
    first = client.benchmark(sha, settings(TENSORRT))
    second = client.benchmark(sha, settings(TENSORRT))
    assert first.provider == TENSORRT == second.provider
    assert first.HasField("engine_cache_hit") and not first.engine_cache_hit
    assert second.engine_cache_hit
    assert second.session_create_ms < first.session_create_ms  # a load, not a build
    engines = server.config.cache_dir / "trt-engines"
    assert any(engines.rglob("*.engine"))
    fp16 = client.benchmark(sha, settings(TENSORRT, fp16=True))  # another engine: its own key
    assert not fp16.engine_cache_hit


def test_a_cuda_profile_names_the_provider_of_each_node(start_agent: StartAgent) -> None:
    _, client = start_agent(max_timeout_s=600.0)
    sha = client.ensure_model(onnx_models.conv_net(32, 56, 3, named=True))
    result = client.benchmark(sha, settings(CUDA, profile=True, profile_runs=10))
    providers = {op.provider for op in result.profile.operators}
    assert CUDA in providers, [(op.node_name, op.provider) for op in result.profile.operators]
