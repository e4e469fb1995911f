"""(a) Fidelity: does the agent report the latency a bare onnxruntime loop sees?

For three models (~0.05 ms, ~1 ms, ~12 ms per run on one thread), runs, in
rounds, one agent benchmark (a ``fleetnas-agent serve`` subprocess on
loopback, its worker a further process) and one bare onnxruntime timing loop
in this process with the very same resolved settings (the agent's defaults:
1 thread, graph optimisation ALL, seed 0, 10 warm-up runs, >= 30 runs and
>= 0.5 s), same session options and same seeded inputs; and, as a control,
the same bare loop in a fresh Python process. The order rotates each round,
and after every agent call the bench waits until the agent's next warm spare
worker has finished importing onnxruntime, so all sides see the same machine
state and drift hits them alike.

Per model it prints the agent's median (median over rounds of the per-call
medians), the bare median (likewise) and the ratio agent/bare (median over
rounds of the per-round ratio, with its range). Target: ratio within ±2 %
([0.98, 1.02]). No assertions.

    .venv/bin/python bench/bench_agent_fidelity.py [--rounds 15] [--max-runs N] [--models NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _agent_common import (
    MODELS,
    AgentProcess,
    BenchModel,
    bare_loop,
    bare_loop_in_subprocess,
    describe_settings,
    header,
    load_line,
    model_by_name,
    print_table,
    resolved_settings,
    verdict,
    wait_quiet,
)

from fleetnas.agent.client import AgentClient
from fleetnas.api.v1 import agent_pb2

TARGET_LOW, TARGET_HIGH = 0.98, 1.02


def measure_model(
    model: BenchModel,
    agent: AgentProcess,
    client: AgentClient,
    settings: agent_pb2.BenchmarkSettings,
    rounds: int,
    tmp: Path,
) -> list[str]:
    """``rounds`` rounds of (agent call, bare loop, fresh-process bare loop), the order
    rotating each round; prints the per-round ratios and returns the summary row."""
    data = model.build()
    model_path = tmp / f"{model.name}.onnx"
    model_path.write_bytes(data)
    sha = client.ensure_model(data)
    medians: dict[str, list[float]] = {"agent": [], "bare": [], "fresh": []}
    runs: list[int] = []

    def agent_step() -> None:
        result = client.benchmark(sha, settings)
        wait_quiet(agent.pid)  # the next spare imports onnxruntime
        medians["agent"].append(result.stats.median_ms)
        runs.append(len(result.samples_ms))

    def bare_step() -> None:
        medians["bare"].append(bare_loop(data, settings).median_ms)

    def fresh_step() -> None:
        medians["fresh"].append(bare_loop_in_subprocess(model_path, settings))

    steps = [agent_step, bare_step, fresh_step]
    for r in range(rounds):
        for i in range(len(steps)):
            steps[(r + i) % len(steps)]()
    ratios = [a / b for a, b in zip(medians["agent"], medians["bare"], strict=True)]
    fresh_ratios = [a / f for a, f in zip(medians["agent"], medians["fresh"], strict=True)]
    print(f"  {model.name}: agent/bare per round  " + " ".join(f"{x:.3f}" for x in ratios))
    print(f"  {model.name}: agent/fresh per round " + " ".join(f"{x:.3f}" for x in fresh_ratios))
    ratio = statistics.median(ratios)
    return [
        model.name,
        model.description,
        f"{statistics.median(runs):.0f}",
        f"{statistics.median(medians['agent']):.4f}",
        f"{statistics.median(medians['bare']):.4f}",
        f"{ratio:.4f}",
        f"{min(ratios):.3f}-{max(ratios):.3f}",
        verdict(TARGET_LOW <= ratio <= TARGET_HIGH),
        f"{statistics.median(medians['fresh']):.4f}",
        f"{statistics.median(fresh_ratios):.4f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per model")
    parser.add_argument(
        "--min-duration", type=float, default=None,
        help="min_duration_s of every benchmark (default: the agent's default)",
    )  # fmt: skip
    parser.add_argument(
        "--max-runs", type=int, default=None,
        help="max_runs of every benchmark (default: the agent's default, 1000)",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", default=[m.name for m in MODELS], help="a subset of the models"
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds: a smoke run")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    models = [model_by_name(name) for name in args.models]
    overrides: dict[str, object] = {}
    if args.min_duration is not None:
        overrides["min_duration_s"] = args.min_duration
    if args.max_runs is not None:
        overrides["max_runs"] = args.max_runs
    settings = resolved_settings(**overrides)
    header(
        "bench_agent_fidelity: agent median vs bare in-process onnxruntime median",
        [
            f"settings: {describe_settings(settings)}",
            f"{rounds} interleaved rounds per model (order rotates); target ratio in "
            f"[{TARGET_LOW}, {TARGET_HIGH}]",
        ],
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        with AgentProcess(Path(tmp) / "agent") as agent, agent.client() as client:
            for model in models:
                rows.append(measure_model(model, agent, client, settings, rounds, Path(tmp)))
    print()
    print_table(
        [
            "model", "what", "runs/call", "agent ms", "bare ms", "agent/bare", "range",
            "target ±2%", "fresh ms", "agent/fresh",
        ],
        rows,
    )  # fmt: skip
    print()
    print(
        "agent/bare is the target figure (bare loop in this process). 'fresh' is the same bare\n"
        "loop in a new Python process each round (no agent code): when agent/fresh is near 1\n"
        "and agent/bare is not, the difference is per-process (memory layout), not isolation."
    )
    print(load_line("at end"))


if __name__ == "__main__":
    main()
