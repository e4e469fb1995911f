"""LiteRT through the agent: fidelity against a bare in-process LiteRT loop, and LiteRT vs
onnxruntime on the same nets at 1 and 2 threads.

Models, each in both formats: the agent's paired reference (``reference.onnx`` /
``reference.tflite``: the same network and weights, a MobileNet-style 128 px net), and two
conv stacks (3x3 conv + ReLU, then global mean) built the same way in ONNX
(``tests/onnx_models.conv_net``, NCHW) and TFLite (``tests/tflite_models.conv_net``, NHWC):
same shapes and cost, different random weights.

1. **Fidelity**: per model, interleaved rounds of one agent benchmark (a real
   ``fleetnas-agent serve`` on loopback, the .tflite uploaded, the agent's default settings
   at 1 thread: XNNPACK) and one bare LiteRT loop in this process, written apart from the
   worker but to its protocol (``Interpreter`` from bytes, explicit threads, seeded inputs set
   once, first run, warm-up, ``perf_counter`` around each ``invoke`` under the same stopping
   rule, gc off). Prints agent/bare (median of per-round ratios), target within ±2%.
2. **LiteRT vs onnxruntime**: bare loops of both formats, interleaved, at 1 and 2 threads;
   prints both medians and LiteRT/onnxruntime.

No assertions; on this shared 2-core VM the figures need a quiet run.

    .venv/bin/python bench/bench_litert.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from _agent_common import (
    AgentProcess,
    bare_loop,
    header,
    load_line,
    onnx_models,
    print_table,
    resolved_settings,
    stop_rule,
    test_models,
    timed_runs,
    verdict,
)
from ai_edge_litert.interpreter import Interpreter

from fleetnas.agent.reference import default_reference_path
from fleetnas.api.v1 import agent_pb2

TOLERANCE = 0.02


def tflite_models() -> ModuleType:
    """The test-suite TFLite builders (``tests/tflite_models.py``)."""
    return test_models("tflite_models")


@dataclass(frozen=True)
class Pair:
    """One net in both formats."""

    name: str
    onnx: Callable[[], bytes]
    tflite: Callable[[], bytes]


PAIRS = (
    Pair("reference-128px", default_reference_path("onnxruntime").read_bytes,
         default_reference_path("litert").read_bytes),
    Pair("conv-16ch-32px-x3", lambda: onnx_models().conv_net(16, 32, 3),
         lambda: tflite_models().conv_net(16, 32, 3)),
    Pair("conv-32ch-56px-x4", lambda: onnx_models().conv_net(32, 56, 4),
         lambda: tflite_models().conv_net(32, 56, 4)),
)  # fmt: skip


def bare_litert_median(data: bytes, s: agent_pb2.BenchmarkSettings, threads: int) -> float:
    """Median (ms) of a bare LiteRT loop per resolved settings ``s`` (see the module doc)."""
    interpreter = Interpreter(model_content=data, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(s.seed)
    for detail in interpreter.get_input_details():
        shape = tuple(int(d) for d in detail["shape"])
        interpreter.set_tensor(detail["index"], rng.standard_normal(shape, dtype=np.float32))
    for _ in range(1 + s.warmup_runs):
        interpreter.invoke()
    return statistics.median(timed_runs(interpreter.invoke,
                                        lambda runs, elapsed: stop_rule(runs, elapsed, s)))


def fidelity(folder: Path, rounds: int) -> list[list[str]]:
    rows = []
    settings = resolved_settings()  # the agent's defaults, 1 thread
    with AgentProcess(folder / "agent") as agent, agent.client() as client:
        for pair in PAIRS:
            data = pair.tflite()
            sha = client.ensure_model(data)
            ratios, medians = [], []
            for _ in range(rounds):
                result = client.benchmark(sha, agent_pb2.BenchmarkSettings())
                bare = bare_litert_median(data, settings, threads=1)
                ratios.append(result.stats.median_ms / bare)
                medians.append(result.stats.median_ms)
            ratio = statistics.median(ratios)
            rows.append([pair.name, result.provider, f"{statistics.median(medians):.3f}",
                         f"{ratio:.3f}", f"{min(ratios):.3f}-{max(ratios):.3f}",
                         verdict(abs(ratio - 1.0) <= TOLERANCE)])  # fmt: skip
    return rows


def versus(rounds: int) -> list[list[str]]:
    rows = []
    for threads in (1, 2):
        settings = resolved_settings(intra_op_threads=threads)
        for pair in PAIRS:
            onnx, tflite = pair.onnx(), pair.tflite()
            ort_ms, lrt_ms = [], []
            for _ in range(rounds):
                ort_ms.append(bare_loop(onnx, settings).median_ms)
                lrt_ms.append(bare_litert_median(tflite, settings, threads))
            o, lt = statistics.median(ort_ms), statistics.median(lrt_ms)
            rows.append([pair.name, str(threads), f"{o:.3f}", f"{lt:.3f}", f"{lt / o:.3f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    parser.add_argument("--quick", action="store_true", help="1 round: a smoke run")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    header("bench_litert: LiteRT through the agent vs bare, and LiteRT vs onnxruntime",
           [f"{rounds} interleaved rounds per case; fidelity target within ±{TOLERANCE:.0%}"])
    with tempfile.TemporaryDirectory(prefix="bench-litert-") as tmp:
        print_table(["model", "provider", "agent ms", "agent/bare", "range", "±2%"],
                    fidelity(Path(tmp), rounds))
    print()
    print_table(["model", "threads", "onnxruntime ms", "LiteRT ms", "LiteRT/onnxruntime"],
                versus(rounds))
    print(load_line("at end"))


if __name__ == "__main__":
    main()
