"""(b) Overhead: end-to-end upload + benchmark through the agent vs the irreducible work.

Agent side (a ``fleetnas-agent serve`` subprocess on loopback, fresh model
bytes every round so nothing is cached): from call start to result, the client
hashes the model, asks HasModels, streams the upload, and calls Benchmark;
that is ``AgentClient.ensure_model`` + ``AgentClient.benchmark``, each part
timed. Irreducible side (in this process, bare onnxruntime): session creation
from the same bytes, the seeded inputs, the first run, the warm-up runs and
exactly as many timed runs as the agent did in that call. Rounds interleave
the two (agent, then bare, so the bare side knows the run count); after each
agent call the bench waits for the agent's next warm spare worker to finish
importing onnxruntime so it does not share the cores with the next timing.

Per model and settings it prints agent wall, irreducible, and the ratio
(median over rounds of the per-round ratio); target <= 1.10. Beside it, for
information, the "self ratio": agent wall over the worker's own irreducible
part of the same call (session + first run + warm-up runs, estimated as
``warmup_runs`` x median, + timed runs, by the worker's clock); it does not
depend on the bare side, so host drift between the two sides cannot move it,
but it counts a fresh process's slower first session as irreducible. Then
where the agent's time goes, from the client's clock and the result's own
timestamps (one host, one clock):

* hash, HasModels, upload: client side, before Benchmark;
* req+queue: Benchmark call start -> the agent's "before" device sample;
* sample+handoff: the before sample (a 50 ms CPU window) + handing the job to
  the warm worker -> the worker starts the job (``started_at``);
* session, first run, warm-up+misc, timed runs: the worker's job (``wall_s``);
  "warm-up+misc" is the rest of ``wall_s``: warm-up runs, reading the model
  file, inputs, a ``gc.collect``, statistics;
* result back: worker done -> the agent's "after" device sample (the answer
  over the pipe, reaping the worker);
* sample+reply: the after sample (another 50 ms window) -> the client holds
  the result.

Finally a few back-to-back calls (no pause, so the next warm spare may still be
importing onnxruntime) show what a busy scheduler sees. No assertions.

    .venv/bin/python bench/bench_agent_overhead.py [--rounds 8] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _agent_common import (
    MODELS,
    AgentProcess,
    BareRun,
    BenchModel,
    bare_fixed,
    describe_settings,
    header,
    load_line,
    print_table,
    resolved_settings,
    verdict,
    wait_quiet,
)

from fleetnas.agent.client import AgentClient, sha256_hex
from fleetnas.agent.device_state import StateSampler
from fleetnas.agent.service import STATE_CPU_WINDOW_S
from fleetnas.api.v1 import agent_pb2

TARGET = 1.10
# The "smaller" setting: a quick look at a model, where fixed costs weigh most.
SMALL_SETTINGS = {"warmup_runs": 5, "min_runs": 10, "min_duration_s": 0.1}


@dataclass
class AgentCall:
    """Seconds spent in each part of one upload + benchmark through the agent."""

    parts: dict[str, float]
    total_s: float
    timed_runs: int
    # The worker's own irreducible part: session + first run + warm-up runs
    # (estimated as warmup_runs x the median) + timed runs, by the worker's clock.
    worker_core_s: float


PARTS = (
    "hash", "HasModels", "upload", "req+queue", "sample+handoff", "session", "first run",
    "warm-up+misc", "timed runs", "result back", "sample+reply",
)  # fmt: skip


def agent_call(
    client: AgentClient, data: bytes, settings: agent_pb2.BenchmarkSettings
) -> AgentCall:
    """Upload (not cached yet) and benchmark ``data``; time each part (see module doc)."""
    t0 = time.perf_counter()
    sha = sha256_hex(data)
    t1 = time.perf_counter()
    present, _ = client.has_models([sha])
    t2 = time.perf_counter()
    if present:
        raise RuntimeError("the bench model is already cached: the seeds must differ")
    client.upload_model(data, sha256=sha)
    t3 = time.perf_counter()
    rpc_start_wall = time.time()
    result = client.benchmark(sha, settings)
    rpc_end_wall = time.time()
    t4 = time.perf_counter()
    worker_end = result.started_at + result.wall_s
    timed_s = sum(result.samples_ms) / 1000.0
    session_s = result.session_create_ms / 1000.0
    first_s = result.first_run_ms / 1000.0
    parts = {
        "hash": t1 - t0,
        "HasModels": t2 - t1,
        "upload": t3 - t2,
        "req+queue": result.state_before.timestamp - rpc_start_wall,
        "sample+handoff": result.started_at - result.state_before.timestamp,
        "session": session_s,
        "first run": first_s,
        "warm-up+misc": result.wall_s - session_s - first_s - timed_s,
        "timed runs": timed_s,
        "result back": result.state_after.timestamp - worker_end,
        "sample+reply": rpc_end_wall - result.state_after.timestamp,
    }
    warmup_s = settings.warmup_runs * result.stats.median_ms / 1000.0
    core_s = session_s + first_s + warmup_s + timed_s
    return AgentCall(parts, t4 - t0, len(result.samples_ms), core_s)


@dataclass
class Case:
    """All rounds of one (model, settings) pair."""

    model: BenchModel
    label: str
    settings: agent_pb2.BenchmarkSettings
    calls: list[AgentCall] = field(default_factory=list)
    bares: list[BareRun] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [c.total_s * 1000.0 / b.wall_ms for c, b in zip(self.calls, self.bares, strict=True)]


def run_case(
    case: Case, agent: AgentProcess, client: AgentClient, rounds: int, seed_base: int
) -> None:
    for r in range(rounds):
        data = case.model.build(seed=seed_base + r)
        # Agent first: the bare side then does exactly the agent's run count.
        call = agent_call(client, data, case.settings)
        wait_quiet(agent.pid)  # the next spare imports onnxruntime
        bare = bare_fixed(data, case.settings, call.timed_runs)
        case.calls.append(call)
        case.bares.append(bare)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000.0:.1f}"


def print_summary(cases: list[Case]) -> None:
    rows = []
    for case in cases:
        ratio = statistics.median(case.ratios())
        rows.append(
            [
                case.model.name,
                case.label,
                f"{statistics.median(c.timed_runs for c in case.calls):.0f}",
                _ms(statistics.median(c.total_s for c in case.calls)),
                f"{statistics.median(b.wall_ms for b in case.bares):.1f}",
                _ms(statistics.median(c.total_s - b.wall_ms / 1000.0
                                      for c, b in zip(case.calls, case.bares, strict=True))),
                f"{ratio:.3f}",
                f"{min(case.ratios()):.2f}-{max(case.ratios()):.2f}",
                verdict(ratio <= TARGET)
                + ("" if ratio <= TARGET else f" (+{(ratio - TARGET) * 100:.0f} pts)"),
                f"{statistics.median(c.total_s / c.worker_core_s for c in case.calls):.3f}",
            ]
        )  # fmt: skip
    print_table(
        ["model", "settings", "runs", "agent ms", "irreduc. ms", "extra ms", "ratio", "range",
         f"target <={TARGET}", "self ratio"],
        rows,
    )  # fmt: skip


def print_breakdown(cases: list[Case]) -> None:
    rows = []
    for case in cases:
        med = {p: statistics.median(c.parts[p] for c in case.calls) for p in PARTS}
        bare_session = statistics.median(b.create_ms for b in case.bares)
        bare_runs = statistics.median(b.wall_ms - b.create_ms for b in case.bares)
        rows.append(
            [f"{case.model.name}/{case.label}"]
            + [_ms(med[p]) for p in PARTS]
            + [f"{bare_session:.1f}", f"{bare_runs:.1f}"]
        )
    print_table(["case (median ms)", *PARTS, "bare session", "bare runs"], rows)


def back_to_back(
    client: AgentClient, model: BenchModel, settings: agent_pb2.BenchmarkSettings, n: int
) -> None:
    calls = [agent_call(client, model.build(seed=90_000 + i), settings) for i in range(n)]
    print_table(
        ["call", "total ms", "sample+handoff ms", "session ms", "timed runs ms"],
        [
            [str(i + 1), _ms(c.total_s), _ms(c.parts["sample+handoff"]),
             _ms(c.parts["session"]), _ms(c.parts["timed runs"])]
            for i, c in enumerate(calls)
        ],
    )  # fmt: skip


def sample_cost_ms(samples: int = 5, gap_s: float = 0.0) -> float:
    """Median wall time of one device-state sample as the agent takes it (this process).

    The sampler's CPU figure covers the time since its previous sample and
    blocks only for what is missing of its window: ``gap_s`` is the time
    between samples (a benchmark's length for before/after pairs).
    """
    sampler = StateSampler(cpu_window_s=STATE_CPU_WINDOW_S)
    times = []
    for _ in range(samples):
        time.sleep(gap_s)
        t0 = time.perf_counter()
        sampler.sample()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="agent/bare pairs per case")
    parser.add_argument("--back-to-back", type=int, default=4, help="calls without a pause")
    parser.add_argument("--quick", action="store_true", help="2 rounds: a smoke run")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    n_b2b = 2 if args.quick else args.back_to_back
    default = resolved_settings()
    small = resolved_settings(**SMALL_SETTINGS)
    header(
        "bench_agent_overhead: upload + benchmark through the agent vs irreducible in-process",
        [
            f"default settings (the agent's): {describe_settings(default)}",
            f"smaller settings: {describe_settings(small)}",
            f"{rounds} interleaved rounds per case, fresh model bytes each round; "
            f"target agent/irreducible <= {TARGET}",
        ],
    )
    cases = [
        Case(model, label, settings)
        for model in MODELS
        for label, settings in (("default", default), ("smaller", small))
    ]
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        with AgentProcess(Path(tmp) / "agent") as agent, agent.client() as client:
            # One untimed call: connection set-up and first-call costs of the agent.
            agent_call(client, MODELS[0].build(seed=99_999), small)
            wait_quiet(agent.pid)
            for i, case in enumerate(cases):
                run_case(case, agent, client, rounds, seed_base=1000 * (i + 1))
            print_summary(cases)
            print()
            print("where the agent's time goes (median over rounds, ms):")
            print_breakdown(cases)
            print()
            print(
                "one device-state sample as the agent takes it (CPU window "
                f"{STATE_CPU_WINDOW_S * 1000:.0f} ms, measured since the previous sample): "
                f"{sample_cost_ms(gap_s=0.1):.2f} ms 0.1 s after the previous one, "
                f"{sample_cost_ms():.1f} ms back to back"
            )
            print()
            print(
                f"back-to-back calls ({MODELS[1].name}, smaller settings, no pause between calls):"
            )
            wait_quiet(agent.pid)
            back_to_back(client, MODELS[1], small, n_b2b)
    print()
    print(load_line("at end"))


if __name__ == "__main__":
    main()
