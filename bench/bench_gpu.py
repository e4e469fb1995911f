"""GPU execution providers through the agent: fidelity, copies, TensorRT engine cache, energy.

For each bench model (``_agent_common.MODELS``) and provider (CUDA,
TensorRT) it prints, from a real ``fleetnas-agent serve`` on loopback:

* **agent/bare**: the agent's median over a bare in-process onnxruntime loop
  with I/O binding (``_agent_common.bare_gpu_median``: the worker's protocol,
  written apart from it), median over interleaved rounds; target within ±2%;
* **copy vs inference**: the median host<->device copy round
  (``BenchmarkResult.copies``) beside the median inference;
* **TensorRT build vs cached**: session creation of the first call (an
  engine build, on a fresh agent cache) and of the second (the engine from
  the agent's cache, ``engine_cache_hit``);
* **energy per inference**: mJ per inference from each readable energy
  meter in the result (NVML on GPUs), with its uncertainty; "n/a" where none
  is readable (never a guess).

On a machine without ``CUDAExecutionProvider`` it says it needs a GPU and
exits 0. No assertions.

    .venv/bin/python bench/bench_gpu.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import onnxruntime as ort
from _agent_common import (
    MODELS,
    AgentProcess,
    bare_gpu_median,
    header,
    load_line,
    print_table,
    verdict,
)

from fleetnas.agent.settings import resolve_for_description
from fleetnas.api.v1 import agent_pb2

PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
SETTINGS = dict(warmup_runs=20, min_runs=200, max_runs=5000, min_duration_s=1.0,
                max_duration_s=5.0, timeout_s=600.0)  # fmt: skip
TOLERANCE = 0.02


def energy_text(result: agent_pb2.BenchmarkResult) -> str:
    readable = [e for e in result.energy if e.readable and e.HasField("mj_per_inference")]
    if not readable:
        return "n/a"
    return "; ".join(f"{e.scope} {e.mj_per_inference:.3f}±{e.uncertainty_mj:.3f} mJ"
                     for e in readable)  # fmt: skip


def bare_options(provider: str) -> list[object]:
    if provider == "TensorrtExecutionProvider":
        return [(provider, {"device_id": "0", "trt_fp16_enable": "False"}),
                ("CUDAExecutionProvider", {"device_id": "0"})]  # fmt: skip
    return [(provider, {"device_id": "0"})]


def one_case(folder: Path, model_index: int, provider: str, rounds: int) -> list[str]:
    model = MODELS[model_index]
    data = model.build(seed=7)
    settings = agent_pb2.BenchmarkSettings(providers=[provider], **SETTINGS)  # type: ignore[arg-type]
    with AgentProcess(folder / f"{model.name}-{provider}") as agent, agent.client() as client:
        sha = client.ensure_model(data)
        first = client.benchmark(sha, settings)  # a fresh cache: TensorRT builds here
        resolved = resolve_for_description(settings, client.describe())
        ratios, last = [], first
        for _ in range(rounds):
            last = client.benchmark(sha, settings)
            bare = bare_gpu_median(data, resolved, bare_options(provider))
            ratios.append(last.stats.median_ms / bare)
    ratio = statistics.median(ratios)
    trt = provider.startswith("Tensorrt")
    return [
        model.name, provider.replace("ExecutionProvider", ""), f"{last.stats.median_ms:.3f}",
        f"{ratio:.3f}", verdict(abs(ratio - 1.0) <= TOLERANCE),
        f"{last.copies.stats.median_ms:.3f}" if last.HasField("copies") else "-",
        f"{first.session_create_ms:.0f} / {last.session_create_ms:.0f}" if trt else "-",
        ("hit" if last.engine_cache_hit else "miss") if trt else "-",
        energy_text(last),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="agent/bare pairs per case")
    parser.add_argument("--quick", action="store_true", help="1 round, the first model only")
    args = parser.parse_args()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("bench_gpu needs a GPU: onnxruntime here has no CUDAExecutionProvider "
              f"(providers: {ort.get_available_providers()}); install onnxruntime-gpu on a "
              "machine with an NVIDIA GPU and run it there")  # fmt: skip
        return 0
    rounds = 1 if args.quick else args.rounds
    models = range(1) if args.quick else range(len(MODELS))
    header("bench_gpu: CUDA and TensorRT through the agent vs a bare I/O-bound loop",
           [f"{rounds} interleaved rounds per case; target agent/bare within ±{TOLERANCE:.0%}"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        for index in models:
            for provider in PROVIDERS:
                if provider in ort.get_available_providers():
                    rows.append(one_case(Path(tmp), index, provider, rounds))
    print_table(["model", "provider", "agent ms", "agent/bare", "±2%", "copy round ms",
                 "TRT create first/cached ms", "engine", "energy per inference"], rows)
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
