"""The phone-side benchmark tools: how to call them and what their output means.

One class per tool, both behind :class:`BenchmarkTool`:

* :class:`LiteRtBenchmarkModel` — LiteRT/TFLite ``benchmark_model`` for
  ``.tflite`` models. It prints **statistics only** (count, first, min,
  max, avg, std of the timed runs), never the runs themselves.
* :class:`OrtPerfTest` — ``onnxruntime_perf_test`` for ``.onnx`` models.
  Given a result file it writes **every run's time**, so its results carry
  raw samples.

The user supplies the binaries (built for the phone's ABI); see
docs/android.md for where to get them. A tool object holds the host path
of its binary (checked to exist and to be an executable built for the
phone's ABI, or a script) and builds the phone-side command line.
"""

from __future__ import annotations

import math
import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fleetnas.agent.android import _errors, _op_profile, _parse
from fleetnas.agent.android._adb import last_lines
from fleetnas.agent.android._device import ABIS
from fleetnas.agent.backends._profile import build_profile, ort_run_ms, parse_ort_profile
from fleetnas.agent.errors import InvalidSettings, ModelInvalid
from fleetnas.agent.reference import sha256_file
from fleetnas.agent.runtimes import LITERT, LITERT_CPU, ONNXRUNTIME
from fleetnas.api.v1 import agent_pb2

FORMAT_TFLITE = "tflite"
FORMAT_ONNX = "onnx"
SOURCE_RAW = "raw"
SOURCE_TOOL_STATISTICS = "tool-statistics"
# onnxruntime_perf_test -o levels for agent_pb2.GraphOptimization 1..4.
ORT_OPT_LEVELS = {1: 0, 2: 1, 3: 2, 4: 99}


def detect_format(head: bytes) -> str:
    """``tflite`` or ``onnx`` from a model's first bytes (never from a file name).

    A TFLite flatbuffer carries the identifier ``TFL3`` at bytes 4..8; an ONNX
    ModelProto starts with field 1 (``ir_version``, a varint: byte ``0x08``).
    Raises ModelInvalid for anything else.
    """
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return FORMAT_TFLITE
    if head[:1] == b"\x08":
        return FORMAT_ONNX
    raise ModelInvalid(
        "not a .tflite (no TFL3 identifier at bytes 4-8) or .onnx (no ir_version field) model"
    )


@dataclass(frozen=True)
class Statistics:
    """Latency statistics in ms, either computed from raw samples or as the tool gave them.

    ``median_ms``/``p90_ms``/``p99_ms`` are None when the tool does not give them.
    """

    count: int
    mean_ms: float
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class ToolResult:
    """One run of a tool, parsed. ``samples_ms`` is empty when the tool gives no per-run times."""

    samples_ms: tuple[float, ...]
    source: str  # SOURCE_RAW or SOURCE_TOOL_STATISTICS
    statistics: Statistics
    init_ms: float | None
    first_run_ms: float | None
    peak_memory_bytes: int | None
    provider: str


@dataclass(frozen=True)
class RunSpec:
    """The measurement a tool is asked for (already validated by the bench settings)."""

    threads: int
    warmup_runs: int
    runs: int
    min_duration_s: float
    max_duration_s: float
    use_xnnpack: bool
    graph_optimization: int
    profile: bool = False  # the tool's per-operator profiler on (a run of its own)


class BenchmarkTool(ABC):
    """A benchmark binary for one model format.

    Contract: :meth:`argv` builds the phone-side command (relative to the
    tool's working directory on the phone); :meth:`parse` turns its stdout
    (and the result file, if :attr:`result_file` is set) into a
    :class:`ToolResult`, raising ToolOutputUnreadable when they hold no
    timing. Instances are immutable and thread-safe. A tool that can profile per
    operator has an empty :attr:`no_profile_reason`: :meth:`argv` of a ``RunSpec`` with
    ``profile`` turns its profiler on and :meth:`parse_profile` reads what that run printed
    (and the file :meth:`output_file` names, printed after the run).
    """

    name: ClassVar[str]
    model_format: ClassVar[str]
    result_file: ClassVar[str | None] = None
    #: the agent runtime it stands for (``BenchmarkSettings.runtime``), the
    #: ``ModelFormat`` it runs and the accelerators a request may name for it
    runtime: ClassVar[str]
    wire_format: ClassVar[int]
    accelerators: ClassVar[tuple[str, ...]]
    #: why per-operator profiles are not available from this tool ("" = they are)
    no_profile_reason: ClassVar[str] = "this tool gives no per-operator profile"

    def __init__(self, binary: Path, *, libraries: Sequence[Path] = ()) -> None:
        """``binary``: host path of the tool built for the phone; ``libraries``: shared
        libraries to push beside it (e.g. ``libonnxruntime.so``). BinaryMissing if any is
        not a readable file."""
        self.binary = Path(binary)
        self.libraries = tuple(Path(p) for p in libraries)
        for path in (self.binary, *self.libraries):
            if not path.is_file():
                raise _errors.BinaryMissing(
                    f"{self.name}: {path} does not exist or is not a file on this host "
                    "(pass the binary built for the phone with --adb-benchmark-binary; "
                    "docs/android.md says where to get it)"
                )
        self.sha256 = sha256_file(self.binary)
        self.library_sha256 = tuple(sha256_file(p) for p in self.libraries)

    @property
    def version(self) -> str:
        """What identifies this build of the tool: its name and the first 12 hex digits of
        its sha256 (the tools print no version; two builds may time differently)."""
        return f"{self.name} sha256:{self.sha256[:12]}"

    def check_abi(self, abi: str) -> None:
        """BinaryNotExecutable unless the binary is an ELF for ``abi`` or a ``#!`` script."""
        with open(self.binary, "rb") as f:
            head = f.read(20)
        if head.startswith(b"#!"):
            return
        if head[:4] != b"\x7fELF":
            raise _errors.BinaryNotExecutable(
                f"{self.name}: {self.binary} is neither an ELF executable nor a script"
            )
        machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
        wanted = ABIS.get(abi, ("", None))[1]
        if wanted is not None and machine != wanted:
            found = next((a for a, (_, m) in ABIS.items() if m == machine), f"e_machine {machine}")
            raise _errors.BinaryNotExecutable(
                f"{self.name}: {self.binary} is built for {found}, the phone is {abi} "
                "(use the build for the phone's ABI, e.g. android_aarch64 for arm64-v8a)"
            )

    @abstractmethod
    def argv(self, binary: str, model: str, spec: RunSpec) -> list[str]:
        """The command line on the phone."""

    @abstractmethod
    def parse(self, stdout: str, result_file_text: str | None, spec: RunSpec) -> ToolResult:
        """The run's result from what the tool printed (and wrote)."""

    def output_file(self, spec: RunSpec) -> str | None:
        """The file (a glob, in the run folder, matching one file) the run of ``spec``
        writes that :meth:`parse` / :meth:`parse_profile` read; None for none."""
        return self.result_file

    def parse_profile(
        self, stdout: str, result_file_text: str | None, spec: RunSpec
    ) -> agent_pb2.OperatorProfile:
        """The per-operator profile of a ``spec.profile`` run. ToolOutputUnreadable when
        the output holds none; InvalidSettings where the tool cannot profile."""
        raise InvalidSettings(f"profile: {self.no_profile_reason}")

    def command(self, binary: str, model: str, spec: RunSpec) -> str:
        """:meth:`argv` quoted for the phone's shell."""
        return " ".join(shlex.quote(part) for part in self.argv(binary, model, spec))


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


class LiteRtBenchmarkModel(BenchmarkTool):
    """LiteRT/TFLite ``benchmark_model`` (classic or LiteRT 2.x builds)."""

    name = "benchmark_model"
    model_format = FORMAT_TFLITE
    runtime = LITERT
    wire_format = agent_pb2.MODEL_FORMAT_TFLITE
    accelerators = (LITERT_CPU,)
    no_profile_reason = ""

    def argv(self, binary: str, model: str, spec: RunSpec) -> list[str]:
        # --warmup_min_secs=0: exactly warmup_runs warm-up runs (the tool's
        # default also runs for at least 0.5 s).
        profiling = ["--enable_op_profiling=true"] if spec.profile else []
        return [
            binary,
            f"--graph={model}",
            f"--num_threads={spec.threads if spec.threads > 0 else -1}",
            f"--warmup_runs={spec.warmup_runs}",
            "--warmup_min_secs=0",
            f"--num_runs={spec.runs}",
            f"--min_secs={spec.min_duration_s:g}",
            f"--max_secs={spec.max_duration_s:g}",
            f"--use_xnnpack={'true' if spec.use_xnnpack else 'false'}",
            *profiling,
        ]

    def parse_profile(
        self, stdout: str, result_file_text: str | None, spec: RunSpec
    ) -> agent_pb2.OperatorProfile:
        """The "Operator-wise Profiling Info for Regular Benchmark Runs" tables
        (``_op_profile.py``): per node its **mean** time per run (``times_are_means``)."""
        applied = spec.use_xnnpack and "XNNPACK delegate" in stdout
        return _op_profile.to_operator_profile(_op_profile.parse_op_profile(stdout),
                                               delegate="XNNPACK" if applied else "")

    def parse(self, stdout: str, result_file_text: str | None, spec: RunSpec) -> ToolResult:
        report = _parse.parse_benchmark_model(stdout)
        stats = report.inference
        mean_us = stats.avg_us if stats is not None and stats.avg_us is not None else (
            report.inference_avg_us)
        if mean_us is None or not math.isfinite(mean_us):
            raise _errors.ToolOutputUnreadable(
                "benchmark_model gave no average of its timed runs"
            )
        peak_mb = report.peak_memory_mb
        return ToolResult(
            samples_ms=(),
            source=SOURCE_TOOL_STATISTICS,
            statistics=Statistics(
                count=stats.count if stats is not None else 0,
                mean_ms=mean_us / 1000.0,
                min_ms=_ms(stats.min_us) if stats else None,
                max_ms=_ms(stats.max_us) if stats else None,
                std_ms=_ms(stats.std_us) if stats else None,
            ),
            init_ms=_ms(report.init_us),
            first_run_ms=_ms(report.first_inference_us),
            peak_memory_bytes=int(peak_mb * 1024 * 1024) if peak_mb is not None else None,
            provider="XNNPACK" if spec.use_xnnpack and report.xnnpack else _op_profile.CPU_KERNELS,
        )


class OrtPerfTest(BenchmarkTool):
    """``onnxruntime_perf_test``: ``-I`` generated inputs, ``-m times``, a per-run result file."""

    name = "onnxruntime_perf_test"
    model_format = FORMAT_ONNX
    result_file = "perf_test_runs.csv"
    runtime = ONNXRUNTIME
    wire_format = agent_pb2.MODEL_FORMAT_ONNX
    accelerators = ("CPUExecutionProvider",)
    no_profile_reason = ""
    #: ``-p PREFIX``: onnxruntime writes its profile to ``PREFIX_<date>_<time>.json``
    profile_prefix = "ort_profile"

    def argv(self, binary: str, model: str, spec: RunSpec) -> list[str]:
        # perf_test has no warm-up count: it runs warmup + runs iterations
        # and parse() drops the first warmup_runs rows of the result file.
        return [
            binary,
            "-I",
            "-m", "times",
            "-r", str(spec.warmup_runs + spec.runs),
            "-x", str(spec.threads),
            "-y", "1",
            "-e", "cpu",
            "-o", str(ORT_OPT_LEVELS.get(spec.graph_optimization, 99)),
            "-s",
            *(["-p", self.profile_prefix] if spec.profile else []),
            model,
            str(self.result_file),
        ]

    def output_file(self, spec: RunSpec) -> str | None:
        return f"{self.profile_prefix}_*.json" if spec.profile else self.result_file

    def parse_profile(
        self, stdout: str, result_file_text: str | None, spec: RunSpec
    ) -> agent_pb2.OperatorProfile:
        """onnxruntime's profile JSON (``-p``), parsed as in-process (``parse_ort_profile``):
        the last ``spec.runs`` runs (perf_test's own first run and the warm-up left out),
        per node its median over them."""
        if not result_file_text:
            raise _errors.ToolOutputUnreadable(
                "onnxruntime_perf_test -p wrote no profile JSON on the phone; its last "
                "lines:\n" + last_lines(stdout, 10)
            )
        try:
            runs = parse_ort_profile(result_file_text)
            run_ms = ort_run_ms(result_file_text)
        except (ValueError, KeyError, TypeError) as exc:
            raise _errors.ToolOutputUnreadable(
                f"onnxruntime_perf_test's profile JSON is not readable: {exc}"
            ) from None
        keep = min(spec.runs, len(runs))
        if not keep or not any(runs[-keep:]):
            raise _errors.ToolOutputUnreadable(
                f"onnxruntime_perf_test's profile holds {len(runs)} runs and no node times"
            )
        return build_profile(runs[-keep:], run_ms[-keep:], agent_pb2.PROFILE_SOURCE_ORT_PROFILING)

    def parse(self, stdout: str, result_file_text: str | None, spec: RunSpec) -> ToolResult:
        report = _parse.parse_perf_test(stdout)
        rows = _parse.parse_perf_test_csv(result_file_text or "")
        samples = tuple(rows[spec.warmup_runs:])
        if not samples:
            raise _errors.ToolOutputUnreadable(
                f"onnxruntime_perf_test wrote {len(rows)} runs to its result file, "
                f"none after the {spec.warmup_runs} warm-up runs"
            )
        mean = sum(samples) / len(samples)
        return ToolResult(
            samples_ms=samples,
            source=SOURCE_RAW,
            statistics=Statistics(count=len(samples), mean_ms=mean,
                                  min_ms=min(samples), max_ms=max(samples)),
            init_ms=report.session_creation_s * 1000.0
            if report.session_creation_s is not None else None,
            first_run_ms=report.first_inference_ms,
            peak_memory_bytes=report.peak_working_set_bytes,
            provider="CPUExecutionProvider",
        )


TOOL_CLASSES: dict[str, type[BenchmarkTool]] = {
    LiteRtBenchmarkModel.name: LiteRtBenchmarkModel,
    OrtPerfTest.name: OrtPerfTest,
}


def tool_from_spec(spec: str) -> BenchmarkTool:
    """A tool from ``--adb-benchmark-binary`` text: ``KIND=PATH`` or a bare ``PATH``.

    KIND is ``benchmark_model`` or ``onnxruntime_perf_test``; a bare PATH is
    recognised by its file name starting with one of them. Extra shared
    libraries follow the path, comma-separated (``onnxruntime_perf_test=
    bin/onnxruntime_perf_test,bin/libonnxruntime.so``). ValueError names the
    accepted forms.
    """
    kind, sep, rest = spec.partition("=")
    if not sep:
        kind, rest = "", spec
    paths = [Path(p) for p in rest.split(",") if p]
    if not paths:
        raise ValueError(f"--adb-benchmark-binary {spec!r}: no path given")
    if not kind:
        kind = next((k for k in TOOL_CLASSES if paths[0].name.startswith(k)), "")
    cls = TOOL_CLASSES.get(kind)
    if cls is None:
        raise ValueError(
            f"--adb-benchmark-binary {spec!r}: say which tool it is, as "
            f"{' or '.join(k + '=PATH' for k in TOOL_CLASSES)}"
        )
    return cls(paths[0], libraries=paths[1:])
