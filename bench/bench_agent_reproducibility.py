"""(c) Reproducibility: the same model in fresh benchmark calls spread over minutes.

One agent (a ``fleetnas-agent serve`` subprocess on loopback), one model
(default: the ~1 ms conv net), ``--calls`` rounds spread evenly over about
``--minutes`` minutes. Every round makes one plain and one paired call (each a
fresh worker process and session), alternating which goes first. Halfway the
agent is restarted on the same cache folder (``--no-restart`` to skip), which
shows the paired method's reference calibration persisting across restarts:
the first paired call calibrates the reference (200 runs) and every later one,
restart or not, reuses that calibration.

Prints the per-call table, then the CV across calls of the plain medians and
of the paired ``latency_ms`` (ratio median × calibrated reference latency).
Target: paired CV <= 1 % (the verdict is on the plain CV, stdev/mean; a
robust CV from the median absolute deviation is printed beside it, as are the
agent's warnings). The paired CV is also given over the calls that used a
kept calibration: a calibration the agent found too noisy, or took on a noisy host (its warning says
so) serves that one call only and is not comparable with the others. The plain CV has no target; it shows the host drift
the paired method cancels (the design measured ~7 % between sessions on this
machine), and so does the CV of the reference's own median in each paired call.
No assertions.

    .venv/bin/python bench/bench_agent_reproducibility.py [--calls 10] [--minutes 3.5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _agent_common import (
    AgentProcess,
    cv,
    describe_settings,
    header,
    load_line,
    model_by_name,
    print_table,
    resolved_settings,
    verdict,
)

from fleetnas.api.v1 import agent_pb2

TARGET_PAIRED_CV = 0.01
# The start of the agent's warning for a calibration it did not keep.
NOISY_CALIBRATION = "the reference calibration was noisy"
NOISY_HOST_CALIBRATION = "calibrated on a noisy host"


def used_once(result) -> bool:
    """True when the agent did not keep the calibration this result used (its warning says why)."""
    return any(NOISY_CALIBRATION in w or NOISY_HOST_CALIBRATION in w for w in result.warnings)


@dataclass
class Call:
    round: int
    at_s: float
    incarnation: int
    method: str
    result: agent_pb2.BenchmarkResult


def _row(c: Call) -> list[str]:
    r = c.result
    base = [str(c.round), f"{c.at_s:.0f}", str(c.incarnation), c.method,
            f"{r.stats.median_ms:.4f}", f"{r.stats.cv:.1%}", str(len(r.samples_ms))]  # fmt: skip
    if c.method == "paired":
        p = r.paired
        ref_median = statistics.median(p.reference_samples_ms)
        base += [f"{p.ratio_median:.4f}", f"{ref_median:.4f}", f"{p.reference_calibrated_ms:.4f}",
                 f"{p.latency_ms:.4f}"]  # fmt: skip
    else:
        base += ["", "", "", ""]
    base.append(f"{r.state_before.load_1m:.2f}")
    base.append(str(len(r.warnings)))
    return base


def print_warnings(calls: list[Call]) -> None:
    """The agent's warnings grouped by kind (the text before the first colon), with the
    calls that had each; the full text of kinds seen at most twice."""
    kinds: dict[str, list[tuple[Call, str]]] = {}
    for c in calls:
        for w in c.result.warnings:
            kinds.setdefault(w.split(":", 1)[0], []).append((c, w))
    if not kinds:
        print("\nthe agent warned about nothing")
        return
    print("\nthe agent's warnings, by kind:")
    for kind, seen in kinds.items():
        where = ", ".join(f"{c.round}{c.method[:2]}" for c, _ in seen)
        print(f"  {kind}: {len(seen)} of {len(calls)} calls ({where})")
        if len(seen) <= 2:
            for _, w in seen:
                print(f"    {w[:160]}")


def _figure(name: str, values: list[float], target: float | None) -> list[str]:
    if not values:
        return [name, "0", "", "", "", "", "", "", ""]
    spread = cv(values)
    return [
        name, str(len(values)), f"{statistics.mean(values):.4f}", f"{min(values):.4f}",
        f"{max(values):.4f}", f"{spread:.2%}", f"{robust_cv(values):.2%}",
        "(none)" if target is None else f"<= {target:.0%}",
        "" if target is None else verdict(spread <= target),
    ]  # fmt: skip


def print_calibrations(paired: list[Call]) -> None:
    """Which reference calibration each paired call used, and whether the one in use after
    the restart is one that was kept before it (the store persisting across restarts)."""
    used: dict[tuple[float, float], list[Call]] = {}
    for c in paired:
        p = c.result.paired
        used.setdefault((p.reference_calibrated_ms, p.reference_calibrated_at), []).append(c)
    print("reference calibrations used:")
    for (ms, _at), users in used.items():
        kept = not used_once(users[0].result)
        rounds = ", ".join(f"{c.round} (agent#{c.incarnation})" for c in users)
        print(f"  {ms:.4f} ms, {'kept' if kept else 'noisy, used once'}: rounds {rounds}")
    last = max(c.incarnation for c in paired)
    if last > 1:
        before = {k for k, users in used.items() if any(c.incarnation < last for c in users)}
        after = {k for k, users in used.items() if any(c.incarnation == last for c in users)}
        answer = "yes" if after and after <= before else "no"
        print(f"after the restart, paired calls used a calibration from before it: {answer}")


def robust_cv(values: list[float]) -> float:
    """1.4826 × median absolute deviation / median: one outlier call does not move it."""
    median = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - median) for v in values) / median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10, help="rounds (one plain + one paired)")
    parser.add_argument("--minutes", type=float, default=3.5, help="spread the rounds over this")
    parser.add_argument("--model", default="medium-conv", help="small-mlp, medium-conv, large-conv")
    parser.add_argument("--no-restart", action="store_true", help="keep one agent process")
    parser.add_argument("--quick", action="store_true", help="4 rounds over ~20 s: a smoke run")
    args = parser.parse_args()
    calls_n = 4 if args.quick else args.calls
    span_s = 20.0 if args.quick else args.minutes * 60.0
    model = model_by_name(args.model)
    plain = resolved_settings()
    paired = resolved_settings(method=agent_pb2.METHOD_PAIRED)
    restart_at = None if args.no_restart or calls_n < 2 else calls_n // 2
    header(
        "bench_agent_reproducibility: the same model in fresh calls over minutes",
        [
            f"model {model.name} ({model.description}); {calls_n} rounds of (plain, paired), "
            f"order alternating, over ~{span_s:.0f} s",
            f"settings: {describe_settings(plain)}",
            "agent restarted before round " + (str(restart_at + 1) if restart_at else "-- (never)"),
            f"target: CV of paired latency_ms <= {TARGET_PAIRED_CV:.0%}",
        ],
    )
    data = model.build()
    calls: list[Call] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-repro-") as tmp:
        with AgentProcess(Path(tmp) / "agent") as agent:
            for i in range(calls_n):
                if restart_at is not None and i == restart_at:
                    agent.restart()
                due = start + i * span_s / max(1, calls_n - 1)
                time.sleep(max(0.0, due - time.monotonic()))
                order = [("plain", plain), ("paired", paired)]
                if i % 2:
                    order.reverse()
                with agent.client() as client:
                    sha = client.ensure_model(data)
                    for method, settings in order:
                        result = client.benchmark(sha, settings)
                        calls.append(
                            Call(i + 1, time.monotonic() - start, agent.incarnation, method, result)
                        )
    print_table(
        ["round", "t s", "agent#", "method", "median ms", "cv", "runs", "ratio", "ref ms",
         "ref calib ms", "latency ms", "load 1m", "warn"],
        [_row(c) for c in calls],
    )  # fmt: skip
    print_warnings(calls)
    plain_medians = [c.result.stats.median_ms for c in calls if c.method == "plain"]
    paired = [c for c in calls if c.method == "paired"]
    # A calibration the agent found too noisy to keep serves its one call only.
    on_kept = [c for c in paired if not used_once(c.result)]
    print()
    print_table(
        ["figure", "calls", "mean ms", "min ms", "max ms", "CV", "robust CV", "target",
         "verdict"],
        [
            _figure("plain median", plain_medians, None),
            _figure("paired latency_ms", [c.result.paired.latency_ms for c in paired],
                    TARGET_PAIRED_CV),
            _figure("paired latency_ms, on a kept calibration",
                    [c.result.paired.latency_ms for c in on_kept], TARGET_PAIRED_CV),
            _figure("reference median (in paired calls)",
                    [statistics.median(c.result.paired.reference_samples_ms) for c in paired],
                    None),
        ],
    )  # fmt: skip
    if on_kept:
        level = statistics.mean(c.result.paired.latency_ms for c in on_kept)
        print(
            f"mean paired latency_ms (kept calibration) / mean plain median: "
            f"{level / statistics.mean(plain_medians):.3f} (the paired level is fixed by the host's "
            "state when the reference was calibrated)"
        )
    print()
    print_calibrations(paired)
    print(load_line("at end"))


if __name__ == "__main__":
    main()
