"""``benchmark_model --enable_op_profiling=true`` tables -> an ``OperatorProfile``.

With op profiling on, LiteRT/TFLite ``benchmark_model`` prints, after its
usual output, up to two profiles (``tensorflow/lite/profiling/
profile_summarizer`` via ``xla/tsl/util/stats_calculator``): "Profiling Info
for Benchmark Initialization:" (AllocateTensors, ModifyGraphWithDelegate —
ignored here) and "Operator-wise Profiling Info for Regular Benchmark
Runs:", each made of

* a **Run Order** table, one row per node in execution order: ``[node
  type] [start] [first] [avg ms] [%] [cdf%] [mem KB] [times called]
  [Name]`` (newer builds drop ``[start]``; columns are read from the
  header, separated by tabs or runs of spaces; node types may hold spaces,
  e.g. XNNPACK's ``Convolution (NHWC, F32) IGEMM``);
* "Top by Computation Time" (the ten largest rows again) and "Summary by
  node type" (``[Node type] [count] [avg ms] [avg %] ...``);
* ``Timings (microseconds): count=N first= ... avg= std=``: the profiled
  runs and their wall time.

What the numbers are (read from ``stats_calculator``): ``[avg ms]`` is the
**mean** time of one *call* of the node over the profiled runs (the tool
keeps no median), ``[times called]`` the calls per run, ``[%]`` the node's
share of all node time. A node's time per run is therefore ``avg ms x times
called`` (builds that print ``0`` calls — the README example — are taken as
one call). The resulting profile says so: ``times_are_means`` is set, its
``median_ms`` and ``run_median_ms`` hold **means**.

Provider/delegate, as the tool reports it: a delegate kernel is one node
whose type names the delegate (``TfLiteXNNPackDelegate`` -> ``XNNPACK``,
``TfLiteNnapiDelegate`` -> ``NNAPI``, ``TfLiteGpuDelegateV2`` -> ``GPU``);
the oldest builds print just ``DELEGATE`` and XNNPACK's own per-op profile
(TF >= 2.10) names its rows ``Delegate/...``: both get the delegate the run
applied (the caller says which), else ``delegate``. Every other node ran on
LiteRT's builtin CPU kernels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetnas.agent.android import _errors
from fleetnas.agent.android._adb import last_lines
from fleetnas.agent.android._parse import parse_run_stats
from fleetnas.agent.backends._profile import NodeTime, build_profile
from fleetnas.api.v1 import agent_pb2

REGULAR_HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs"
INIT_HEADER = "Profiling Info for Benchmark Initialization"
CPU_KERNELS = "CPU (builtin kernels)"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?"
_COLUMN = re.compile(r"\[([^\]]+)\]")
_DELEGATE_TYPES = (("xnnpack", "XNNPACK"), ("nnapi", "NNAPI"), ("gpu", "GPU"),
                   ("hexagon", "Hexagon"), ("coreml", "CoreML"))


@dataclass(frozen=True)
class ProfileRow:
    """One row of a Run Order table (ms; ``share`` 0..1; ``start_ms`` None where the
    build prints no ``[start]``)."""

    node_type: str
    name: str
    first_ms: float
    avg_ms: float
    share: float
    times_called: int
    start_ms: float | None = None

    @property
    def per_run_ms(self) -> float:
        """Mean time of the node per run: ``avg_ms`` per call x calls per run."""
        return self.avg_ms * max(1, self.times_called)


@dataclass(frozen=True)
class TypeRow:
    """One row of "Summary by node type"."""

    node_type: str
    count: int
    avg_ms: float
    share: float


@dataclass(frozen=True)
class OpProfileReport:
    """The regular runs' op profile. ``runs`` and ``run_avg_ms`` come from its
    ``Timings`` line (None when absent); ``nodes_executed`` from "Number of nodes
    executed"."""

    rows: tuple[ProfileRow, ...]
    by_type: tuple[TypeRow, ...]
    runs: int | None
    run_avg_ms: float | None
    nodes_executed: int | None


def _regular_section(text: str) -> str:
    """The text of the regular runs' profile (see the module docstring)."""
    at = text.find(REGULAR_HEADER)
    if at >= 0:
        return text[at + len(REGULAR_HEADER):]
    if INIT_HEADER not in text and "Run Order" in text:
        return text  # the oldest builds print one unlabelled profile
    raise _errors.ToolOutputUnreadable(
        "benchmark_model printed no operator profile of its regular runs (no \""
        f"{REGULAR_HEADER}\" Run Order table; was --enable_op_profiling=true honoured?); "
        "its last lines:\n" + last_lines(text, 10)
    )


def _table(lines: list[str], title: str) -> tuple[list[str], list[str]]:
    """(header columns, row lines) of the first table titled ``title``; ([], []) if none."""
    for i, line in enumerate(lines):
        if "=====" in line and title in line and i + 1 < len(lines):
            columns = _COLUMN.findall(lines[i + 1])
            rows = []
            for row in lines[i + 2:]:
                if not row.strip() or "=====" in row:
                    break
                rows.append(row)
            return columns, rows
    return [], []


def _split(row: str, numeric: int) -> tuple[str, list[str], str] | None:
    """(leading label, ``numeric`` numbers, trailing text) of a table row; None if not one."""
    pattern = (rf"^\s*(\S.*?)\s+({_NUMBER}(?:\s+{_NUMBER}){{{numeric - 1}}})"
               rf"(?:\s+(\S.*?))?\s*$")
    match = re.match(pattern, row)
    if match is None:
        return None
    return match.group(1).strip(), match.group(2).split(), match.group(3) or ""


def _number(text: str) -> float:
    return float(text.rstrip("%"))


def _rows(columns: list[str], lines: list[str]) -> list[ProfileRow]:
    numeric = columns[1:-1]
    wanted = ("first", "avg ms", "%", "times called")
    if not columns or any(c not in numeric for c in wanted):
        raise _errors.ToolOutputUnreadable(
            f"benchmark_model's Run Order table has columns {columns}; fleetnas reads "
            f"{', '.join(wanted)} from it"
        )
    rows = []
    for line in lines:
        parts = _split(line, len(numeric))
        if parts is None:
            raise _errors.ToolOutputUnreadable(
                f"benchmark_model's Run Order row {line.strip()[:120]!r} does not have the "
                f"{len(numeric)} numbers its header names"
            )
        node_type, numbers, name = parts
        values = dict(zip(numeric, numbers, strict=True))
        rows.append(ProfileRow(
            node_type=node_type,
            name=name,
            first_ms=_number(values["first"]),
            avg_ms=_number(values["avg ms"]),
            share=_number(values["%"]) / 100.0,
            times_called=int(_number(values["times called"])),
            start_ms=_number(values["start"]) if "start" in values else None,
        ))  # fmt: skip
    return rows


def parse_op_profile(text: str) -> OpProfileReport:
    """The regular runs' op profile in ``benchmark_model`` output. ToolOutputUnreadable
    when it holds none (profiling off, the run died first) or its table is malformed."""
    lines = _regular_section(text).splitlines()
    columns, row_lines = _table(lines, "Run Order")
    if not row_lines:
        raise _errors.ToolOutputUnreadable(
            "benchmark_model's operator profile has no Run Order rows; its last lines:\n"
            + last_lines(text, 10)
        )
    rows = _rows(columns, row_lines)
    by_type = []
    type_columns, type_lines = _table(lines, "Summary by node type")
    for line in type_lines:
        parts = _split(line, len(type_columns) - 1)
        if parts is not None and {"count", "avg ms", "avg %"} <= set(type_columns):
            values = dict(zip(type_columns[1:], parts[1], strict=False))
            by_type.append(TypeRow(node_type=parts[0], count=int(_number(values["count"])),
                                   avg_ms=_number(values["avg ms"]),
                                   share=_number(values["avg %"]) / 100.0))
    timings = next((ln for ln in lines if "Timings (microseconds):" in ln), "")
    stats = parse_run_stats(timings) if timings else None
    executed = re.search(r"Number of nodes executed:\s*(\d+)", "\n".join(lines))
    return OpProfileReport(
        rows=tuple(rows),
        by_type=tuple(by_type),
        runs=stats.count if stats is not None else None,
        run_avg_ms=stats.avg_us / 1000.0 if stats is not None and stats.avg_us else None,
        nodes_executed=int(executed.group(1)) if executed else None,
    )


def provider_of(row: ProfileRow, delegate: str) -> str:
    """Who ran the node (module docstring); ``delegate``: the delegate the run applied."""
    lowered = row.node_type.lower()
    if "delegate" in lowered and lowered != "delegate":
        return next((name for key, name in _DELEGATE_TYPES if key in lowered), row.node_type)
    if lowered == "delegate" or row.name.startswith("Delegate/"):
        return delegate or "delegate"
    return CPU_KERNELS


def to_operator_profile(report: OpProfileReport, *, delegate: str) -> agent_pb2.OperatorProfile:
    """The v1 profile: per node its time per run (a mean), share, op type, provider; per op
    type the sums. Node names the tool repeats are told apart by ``#2``, ``#3``..."""
    nodes, seen = [], dict[str, int]()
    for row in report.rows:
        seen[row.name] = seen.get(row.name, 0) + 1
        name = row.name if seen[row.name] == 1 else f"{row.name}#{seen[row.name]}"
        nodes.append(NodeTime(name=name, op_type=row.node_type,
                              provider=provider_of(row, delegate), ms=row.per_run_ms))
    total = sum(n.ms for n in nodes)
    run_ms = report.run_avg_ms if report.run_avg_ms is not None else total
    profile = build_profile([nodes], [run_ms], agent_pb2.PROFILE_SOURCE_BENCHMARK_MODEL)
    runs = report.runs or 1
    profile.profiled_runs = runs
    for op in profile.operators:
        op.runs = runs
    profile.times_are_means = True
    return profile
