"""Per-operator profiles: node times per profiled run -> an ``OperatorProfile``.

Runtimes report a profile as events; each backend turns its runtime's events
into :class:`NodeTime` lists, one per profiled run, and
:func:`build_profile` summarises them the same way for every runtime:

* per node, in execution order (the order of first appearance): its median
  time over the runs it was seen in, its share of the total, the provider or
  delegate that ran it;
* per op type: node count, summed medians, share, largest first;
* ``total_ms`` is the sum of the nodes' medians; ``run_median_ms`` the median
  wall time of a whole profiled run (the runtime's own overhead per run,
  outside any node, is the difference).

:func:`parse_ort_profile` reads onnxruntime's ``enable_profiling`` JSON (a
Chrome trace: ``cat`` "Session" events ``model_run`` per run, ``cat`` "Node"
events ``<node>_kernel_time`` with ``args.op_name`` and ``args.provider``,
times in microseconds).
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.api.v1 import agent_pb2

_KERNEL_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class NodeTime:
    """One node's time in one profiled run."""

    name: str
    op_type: str
    provider: str
    ms: float


def build_profile(
    runs: Sequence[Sequence[NodeTime]], run_ms: Sequence[float], source: int
) -> agent_pb2.OperatorProfile:
    """Summarise per-run node times (see the module docstring). ValueError without runs."""
    if not runs or not run_ms:
        raise ValueError("a profile needs at least one profiled run")
    order: list[str] = []
    seen: dict[str, list[NodeTime]] = {}
    for run in runs:
        for node in run:
            if node.name not in seen:
                order.append(node.name)
                seen[node.name] = []
            seen[node.name].append(node)
    medians = {name: statistics.median(n.ms for n in seen[name]) for name in order}
    total = sum(medians.values())
    profile = agent_pb2.OperatorProfile(
        source=source,
        profiled_runs=len(runs),
        total_ms=total,
        run_median_ms=statistics.median(run_ms),
    )
    by_type: dict[str, list[float]] = {}
    for name in order:
        first = seen[name][0]
        profile.operators.add(
            node_name=name,
            op_type=first.op_type,
            median_ms=medians[name],
            share=medians[name] / total if total else 0.0,
            provider=first.provider,
            runs=len(seen[name]),
        )
        by_type.setdefault(first.op_type, []).append(medians[name])
    for op_type, times in sorted(by_type.items(), key=lambda kv: -sum(kv[1])):
        profile.op_types.add(
            op_type=op_type,
            nodes=len(times),
            total_ms=sum(times),
            share=sum(times) / total if total else 0.0,
        )
    return profile


def _ort_events(text: str) -> list[Any]:
    """The event list of onnxruntime's profile JSON; ValueError when the text is not one."""
    try:
        events = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the onnxruntime profile is not JSON: {exc}") from None
    if not isinstance(events, list):
        raise ValueError("the onnxruntime profile is not a list of events")
    return events


def ort_run_ms(text: str) -> list[float]:
    """The wall time (ms) of each run (``model_run`` event) in onnxruntime's profile JSON,
    in order; ValueError when the text is not such a profile."""
    events = _ort_events(text)
    runs = sorted(
        (float(e["ts"]), float(e["dur"]) / 1000.0)
        for e in events
        if isinstance(e, dict) and e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    return [ms for _, ms in runs]


def parse_ort_profile(text: str, *, skip_runs: int = 0) -> list[list[NodeTime]]:
    """Node times per run from onnxruntime's profile JSON, the first ``skip_runs`` runs left
    out (warm-up). ValueError when the text is not such a profile."""
    events = _ort_events(text)
    windows = sorted(
        (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
        for e in events
        if isinstance(e, dict) and e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    starts = [begin for begin, _ in windows]
    runs: list[list[NodeTime]] = [[] for _ in windows]
    for event in events:
        if not (isinstance(event, dict) and event.get("cat") == "Node"):
            continue
        name = str(event.get("name", ""))
        if not name.endswith(_KERNEL_SUFFIX):
            continue  # older versions also log _fence_before/_fence_after
        start = float(event["ts"])
        i = bisect.bisect_right(starts, start) - 1  # the last run that began before the node
        if i < 0 or start > windows[i][1]:
            continue  # outside every run (none should be)
        args = event.get("args") or {}
        runs[i].append(NodeTime(
            name=name[: -len(_KERNEL_SUFFIX)],
            op_type=str(args.get("op_name", "")),
            provider=str(args.get("provider", "")),
            ms=float(event["dur"]) / 1000.0,
        ))  # fmt: skip
    return runs[skip_runs:]
