"""The measurement itself, run inside a worker process (see ``worker_main``).

Imports onnxruntime and numpy: only the worker imports this module.

Protocol of one benchmark (plain): create the session (timed:
``session_create_ms``), resolve input shapes, make seeded random inputs, one
first run (``first_run_ms``), ``warmup_runs`` untimed runs, then the timed
loop, one ``time.perf_counter`` pair per run, until
``(runs >= min_runs and elapsed >= min_duration_s) or runs >= max_runs or
elapsed >= max_duration_s``. The garbage collector is off during timed runs.

Paired: the same for a candidate and the reference in one process, with the
warm-up interleaved; then, if the reference has no calibration for these
settings yet, ``calibration_runs`` reference runs whose median becomes it;
then pairs (candidate run, reference run) under the same stopping rule.

Failures raise :class:`JobFailure` naming a class of ``fleetnas.agent.errors``.
"""

from __future__ import annotations

import gc
import hashlib
import math
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from fleetnas.agent._text import client_text, echo
from fleetnas.agent._worker_protocol import Job, ReferenceJob
from fleetnas.agent.reference import Calibration
from fleetnas.agent.stats import latency_stats, mean_std_cv
from fleetnas.api.v1 import agent_pb2

NOISY_CV = 0.05
# Warn when the reference runs this much slower or faster than when calibrated.
REFERENCE_DRIFT_WARNING = 0.2
_MAX_ORT_MESSAGE = 600

_OPT_LEVELS = {
    agent_pb2.GRAPH_OPTIMIZATION_DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    agent_pb2.GRAPH_OPTIMIZATION_BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    agent_pb2.GRAPH_OPTIMIZATION_EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    agent_pb2.GRAPH_OPTIMIZATION_ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

_DTYPES: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}

# ORT exception class names (onnxruntime.capi.onnxruntime_pybind11_state).
_LOAD_INVALID = {
    "InvalidProtobuf",
    "InvalidGraph",
    "InvalidArgument",
    "NoModel",
    "Fail",
    "ModelLoaded",
}
# ORT exception class names a run raises for a graph that cannot run on its inputs (an index
# out of range, shapes that do not fit): the inputs' fault if input_shapes chose them,
# else the model's.
_RUN_INVALID = {"InvalidArgument", "RuntimeException", "Fail"}
_UNSUPPORTED_PATTERNS = (
    "is not a registered function/op",
    "Could not find an implementation for",
    "No Op registered for",
)
_MEMORY_PATTERNS = ("Failed to allocate memory", "bad_alloc", "bad allocation")


class JobFailure(Exception):
    """A failure to report to the parent: ``reason`` names a fleetnas.agent.errors class."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _trim(text: str) -> str:
    """An onnxruntime message as a client may see it: one line, no host paths, bounded."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", " ".join(str(text).split()))
    return client_text(text, _MAX_ORT_MESSAGE)


def _names(names: list[str], most: int = 5) -> str:
    """Input names for a detail: the first ``most``, each cut short, and how many more."""
    shown_names = ", ".join(echo(n, 60) for n in names[:most])
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return f"[{shown_names}{more}]"


def classify(
    exc: BaseException, *, phase: str, memory_cap_bytes: int, shapes_given: bool
) -> JobFailure:
    """Map an onnxruntime exception raised while loading (``phase="load"``) or running a model."""
    if isinstance(exc, JobFailure):
        return exc
    name = type(exc).__name__
    text = _trim(str(exc))
    if isinstance(exc, MemoryError) or any(p in text for p in _MEMORY_PATTERNS):
        return JobFailure(
            "MemoryCapExceeded",
            f"the model needed more memory than the cap of {memory_cap_bytes >> 20} MiB allows "
            f"(settings.memory_cap_bytes, capped by the agent's memory cap): {text}",
        )
    if name == "NotImplemented" or any(p in text for p in _UNSUPPORTED_PATTERNS):
        return JobFailure(
            "UnsupportedOperator",
            f"onnxruntime {ort.__version__} on this agent cannot run the model: {text}",
        )
    if phase == "load":
        if name in _LOAD_INVALID:
            return JobFailure("ModelInvalid", f"onnxruntime cannot load the model: {text}")
        return JobFailure(
            "InternalError", f"creating the onnxruntime session failed: {name}: {text}"
        )
    if name in _RUN_INVALID and shapes_given:
        return JobFailure(
            "InvalidSettings",
            f"running the model with the given input_shapes failed; check input_shapes: {text}",
        )
    if name in _RUN_INVALID:  # the model's own shapes: nothing of the settings is to blame
        return JobFailure("ModelInvalid", f"the model fails when run: {text}")
    return JobFailure("InternalError", f"running the model failed: {name}: {text}")


def make_session(
    model: bytes, settings: agent_pb2.BenchmarkSettings
) -> tuple[ort.InferenceSession, float]:
    """A session per the settings, from bytes (never a path: external data can only resolve
    inside the worker's own empty working directory); returns it and its creation time (ms)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # Only the ONNX protobuf format: no ORT flatbuffer parser on untrusted bytes.
    options.add_session_config_entry("session.load_model_format", "ONNX")
    # Which provider got which nodes (see provider_used); ignored by an onnxruntime without it.
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    start = time.perf_counter()
    session = ort.InferenceSession(model, sess_options=options, providers=list(settings.providers))
    return session, (time.perf_counter() - start) * 1000.0


def provider_used(session: ort.InferenceSession) -> tuple[str, dict[str, int]]:
    """The execution provider that ran the model's nodes, and the node count per provider.

    ``session.get_providers()`` lists what was *registered*: the requested
    providers plus the CPU fallback, whether or not they took any node (the
    Azure provider takes none of an ordinary graph). The partitioning that
    onnxruntime recorded (``get_provider_graph_assignment_info``, onnxruntime
    1.2x+) says who got the nodes: the provider with the most nodes is
    reported, ties going to the earlier registered. Where that record is
    missing (older onnxruntime, a graph with no nodes) the first registered
    provider is reported, as onnxruntime itself would prefer it.
    """
    registered = list(session.get_providers())
    counts: dict[str, int] = {}
    try:
        for subgraph in session.get_provider_graph_assignment_info():
            counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
    except (AttributeError, RuntimeError):
        counts = {}
    counts = {ep: n for ep, n in counts.items() if n > 0}
    if not counts:
        return registered[0], counts
    rank = {ep: i for i, ep in enumerate(registered)}
    return min(counts, key=lambda ep: (-counts[ep], rank.get(ep, len(rank)))), counts


def resolve_inputs(
    session: ort.InferenceSession, settings: agent_pb2.BenchmarkSettings
) -> list[agent_pb2.TensorInfo]:
    """Concrete dims and element type for every model input.

    Raises JobFailure(InvalidSettings) for a symbolic dim without an
    ``input_shapes`` entry, a shape that contradicts a fixed dim or the rank,
    or an ``input_shapes`` name that is not an input of the model;
    JobFailure(UnsupportedOperator) for an input type the agent cannot make;
    an input larger than the memory cap: see :func:`_check_size`.
    """
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    given = {s.name: list(s.dims) for s in settings.input_shapes}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise JobFailure(
            "InvalidSettings",
            f"input_shapes names {_names(unknown)}, which the model does not have; its inputs "
            f"are {_names(names)}",
        )
    resolved = []
    for inp in inputs:
        if inp.type not in _DTYPES:
            raise JobFailure(
                "UnsupportedOperator",
                f"input {echo(inp.name, 60)} has type {inp.type}; the agent can only generate "
                f"inputs of types {sorted(t[7:-1] for t in _DTYPES)}",
            )
        name = echo(inp.name, 60)
        dims = _dims(name, list(inp.shape), given.get(inp.name))
        _check_size(name, dims, _DTYPES[inp.type], settings.memory_cap_bytes,
                    given=inp.name in given)  # fmt: skip
        resolved.append(agent_pb2.TensorInfo(name=inp.name, dims=dims, element_type=inp.type[7:-1]))
    return resolved


def _dims(name: str, model_dims: list[object], given: list[int] | None) -> list[int]:
    """The concrete dims of input ``name`` (already fit for a detail): ``given`` checked
    against the model's shape, or the model's own dims when all are fixed."""
    if given is None:
        for axis, dim in enumerate(model_dims):
            if not (isinstance(dim, int) and dim >= 0):
                raise JobFailure(
                    "InvalidSettings",
                    f"input {name} has dynamic dim {axis} ({echo(dim, 40)}) in shape "
                    f"{echo(model_dims)}; pass input_shapes with an entry for {name} giving "
                    "concrete sizes for every dim",
                )
        return [d for d in model_dims if isinstance(d, int)]  # all of them, as just checked
    if len(given) != len(model_dims):
        raise JobFailure(
            "InvalidSettings",
            f"input_shapes gives input {name} {len(given)} dims {echo(given)}, but the "
            f"model's input has rank {len(model_dims)} (shape {echo(model_dims)})",
        )
    for axis, (want, have) in enumerate(zip(given, model_dims, strict=True)):
        if isinstance(have, int) and have > 0 and have != want:
            raise JobFailure(
                "InvalidSettings",
                f"input_shapes gives input {name} dims {echo(given)}, but dim {axis} of the "
                f"model's input is fixed at {have} (shape {echo(model_dims)})",
            )
    return given


def _check_size(name: str, dims: list[int], dtype: type, cap: int, *, given: bool) -> None:
    """Refuse an input tensor that alone is larger than the worker's memory cap, naming it.

    Dims from ``input_shapes`` → InvalidSettings; the model's own fixed dims →
    MemoryCapExceeded (permanent: the same model never fits under that cap).
    """
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize  # Python ints: no overflow
    if nbytes <= cap:
        return
    size = f"{nbytes} bytes ({nbytes / 2**20:.4g} MiB)"
    cap_text = f"the worker's memory cap of {cap >> 20} MiB (settings.memory_cap_bytes)"
    if given:
        raise JobFailure(
            "InvalidSettings",
            f"input_shapes gives input {name} dims {echo(dims)}: that tensor alone is {size}, "
            f"over {cap_text}; give smaller dims",
        )
    raise JobFailure(
        "MemoryCapExceeded",
        f"the model's input {name} of shape {echo(dims)} alone is {size}, over {cap_text}",
    )


def make_feeds(inputs: list[agent_pb2.TensorInfo], seed: int) -> dict[str, np.ndarray]:
    """Seeded random tensors: normal floats, small non-negative ints (safe as indices), bools."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for info in inputs:
        dtype = _DTYPES[f"tensor({info.element_type})"]
        shape = tuple(info.dims)
        values: np.ndarray | np.generic | bool
        if np.issubdtype(dtype, np.floating):
            values = rng.standard_normal(shape, dtype=np.float32)
        elif dtype is np.bool_:
            values = rng.random(shape) < 0.5
        else:
            values = rng.integers(0, 4, size=shape)
        # asarray: for a 0-d shape numpy hands back scalars, which onnxruntime refuses
        feeds[info.name] = np.asarray(values, dtype=dtype)
    return feeds


@dataclass
class _Model:
    session: ort.InferenceSession
    feeds: dict[str, np.ndarray]
    inputs: list[agent_pb2.TensorInfo]
    create_ms: float

    def run(self) -> None:
        self.session.run(None, self.feeds)


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def _done(runs: int, elapsed: float, s: agent_pb2.BenchmarkSettings) -> bool:
    return (
        (runs >= s.min_runs and elapsed >= s.min_duration_s)
        or runs >= s.max_runs
        or elapsed >= s.max_duration_s
    )


def timed_loop(run: Callable[[], None], s: agent_pb2.BenchmarkSettings) -> list[float]:
    """Per-run latencies (ms) until the stopping rule holds; at least one run."""
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        loop_start = time.perf_counter()
        while True:
            start = time.perf_counter()
            run()
            end = time.perf_counter()
            samples.append((end - start) * 1000.0)
            if _done(len(samples), end - loop_start, s):
                return samples
    finally:
        gc.enable()


def paired_loop(
    candidate: Callable[[], None], reference: Callable[[], None], s: agent_pb2.BenchmarkSettings
) -> tuple[list[float], list[float]]:
    """Alternating (candidate, reference) runs; returns both sample lists (ms), same length."""
    cand: list[float] = []
    ref: list[float] = []
    gc.collect()
    gc.disable()
    try:
        loop_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            candidate()
            t1 = time.perf_counter()
            reference()
            t2 = time.perf_counter()
            cand.append((t1 - t0) * 1000.0)
            ref.append((t2 - t1) * 1000.0)
            if _done(len(cand), t2 - loop_start, s):
                return cand, ref
    finally:
        gc.enable()


def robust_cv(values: list[float]) -> float:
    """1.4826 × median absolute deviation / median: a cv that a few preempted runs do not move."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return 1.4826 * mad / median if median else 0.0


def calibrate(reference: Callable[[], None], runs: int) -> tuple[float, float]:
    """The reference's median latency (ms) over ``runs`` timed runs (already warmed up),
    and the robust cv of those runs."""
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            samples.append(_timed(reference))
    finally:
        gc.enable()
    return statistics.median(samples), robust_cv(samples)


def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB elsewhere


def _load(path: str, s: agent_pb2.BenchmarkSettings, *, what: str) -> _Model:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        # the agent's own cache file is gone: a fault of this agent, not the model
        raise JobFailure("InternalError", f"cannot read the {what} file: {exc.strerror}") from exc
    if not data:
        raise JobFailure("ModelInvalid", "the model is empty (0 bytes)")
    shapes_given = len(s.input_shapes) > 0 and what == "model"
    try:
        session, create_ms = make_session(data, s)
    except Exception as exc:  # onnxruntime raises many unrelated classes
        raise classify(
            exc, phase="load", memory_cap_bytes=s.memory_cap_bytes, shapes_given=shapes_given
        ) from exc
    del data
    if not session.get_outputs():
        raise JobFailure("ModelInvalid", f"the {what} has no outputs: there is nothing to run")
    if what == "model":
        inputs = resolve_inputs(session, s)
    else:  # the reference has static shapes; the candidate's input_shapes are not its own
        plain = agent_pb2.BenchmarkSettings()
        plain.CopyFrom(s)
        del plain.input_shapes[:]
        inputs = resolve_inputs(session, plain)
    return _Model(session, make_feeds(inputs, s.seed), inputs, create_ms)


def _guarded(
    fn: Callable[[], None], s: agent_pb2.BenchmarkSettings, *, shapes: bool
) -> Callable[[], None]:
    """``fn`` with onnxruntime failures classified (only on the failure path: no timing cost)."""

    def call() -> None:
        try:
            fn()
        except Exception as exc:
            raise classify(
                exc, phase="run", memory_cap_bytes=s.memory_cap_bytes, shapes_given=shapes
            ) from exc

    return call


def run_job(job: Job) -> tuple[agent_pb2.BenchmarkResult, Calibration | None]:
    """Run one benchmark. Returns the result (service-owned fields left empty) and the
    reference calibration the worker measured, if it measured one steady enough to keep."""
    started_at = time.time()
    wall_start = time.perf_counter()
    s = agent_pb2.BenchmarkSettings.FromString(job.settings)
    model = _load(job.model_path, s, what="model")
    provider, nodes = provider_used(model.session)
    run = _guarded(model.run, s, shapes=len(s.input_shapes) > 0)
    result = agent_pb2.BenchmarkResult(
        settings=s,
        session_create_ms=model.create_ms,
        provider=provider,
        onnxruntime_version=ort.__version__,
        started_at=started_at,
        inputs=model.inputs,
    )
    result.first_run_ms = _timed(run)
    calibration: Calibration | None = None
    if s.method == agent_pb2.METHOD_PAIRED:
        if job.reference is None:
            raise JobFailure("InternalError", "paired benchmark without a reference model")
        calibration = _paired(job.reference, s, run, result)
    else:
        for _ in range(s.warmup_runs):
            run()
        result.samples_ms.extend(timed_loop(run, s))
    result.stats.CopyFrom(latency_stats(result.samples_ms))
    result.peak_rss_bytes = _peak_rss_bytes()
    result.warnings.extend(_warnings(result, s))
    if len(nodes) > 1:
        split = ", ".join(f"{ep} {n}" for ep, n in sorted(nodes.items(), key=lambda kv: -kv[1]))
        result.warnings.append(f"onnxruntime split the model's nodes between providers: {split}")
    result.wall_s = time.perf_counter() - wall_start
    return result, calibration


def _paired(
    ref_job: ReferenceJob,
    s: agent_pb2.BenchmarkSettings,
    run: Callable[[], None],
    result: agent_pb2.BenchmarkResult,
) -> Calibration | None:
    with open(ref_job.path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != ref_job.sha256:
        raise JobFailure(
            "InternalError",
            f"the agent's reference model changed on disk (sha256 {digest}); reinstall the agent",
        )
    reference = _load(ref_job.path, s, what="reference model")
    ref_run = _guarded(reference.run, s, shapes=False)
    ref_run()
    for _ in range(s.warmup_runs):
        run()
        ref_run()
    calibration = None
    if ref_job.calibrated_ms is None or ref_job.calibrated_at is None:
        calibrated_ms, calibration_cv = calibrate(ref_run, ref_job.calibration_runs)
        calibrated_at = time.time()
        if calibration_cv <= ref_job.max_calibration_cv:
            calibration = Calibration(calibrated_ms, calibrated_at, ref_job.calibration_runs)
        else:
            # Every later paired result would inherit a calibration taken on a busy host.
            result.warnings.append(
                f"the reference calibration was noisy (robust cv {calibration_cv:.1%} over "
                f"{ref_job.calibration_runs} runs, above {ref_job.max_calibration_cv:.0%}); it was used "
                "for this result only and not kept: the next paired benchmark recalibrates"
            )
    else:
        calibrated_ms, calibrated_at = ref_job.calibrated_ms, ref_job.calibrated_at
    cand, ref = paired_loop(run, ref_run, s)
    ratios = [c / r for c, r in zip(cand, ref, strict=True)]
    _, _, ratio_cv = mean_std_cv(ratios)
    ratio_median = statistics.median(ratios)
    drift = statistics.median(ref) / calibrated_ms - 1.0
    if abs(drift) > REFERENCE_DRIFT_WARNING:
        result.warnings.append(
            f"the reference ran {abs(drift):.0%} {'slower' if drift > 0 else 'faster'} than "
            f"when calibrated ({statistics.median(ref):.3f} ms vs {calibrated_ms:.3f} ms): the "
            "host's speed changed; the paired ratio compensates for uniform slowdowns only"
        )
    result.samples_ms.extend(cand)
    result.paired.CopyFrom(
        agent_pb2.PairedResult(
            reference_name=ref_job.name,
            reference_sha256=ref_job.sha256,
            reference_samples_ms=ref,
            ratios=ratios,
            ratio_median=ratio_median,
            ratio_cv=ratio_cv,
            reference_calibrated_ms=calibrated_ms,
            reference_calibrated_at=calibrated_at,
            latency_ms=ratio_median * calibrated_ms,
        )
    )
    return calibration


def _warnings(result: agent_pb2.BenchmarkResult, s: agent_pb2.BenchmarkSettings) -> list[str]:
    out = []
    n = len(result.samples_ms)
    if result.stats.cv > NOISY_CV:
        out.append(
            f"noisy measurement: latency cv is {result.stats.cv:.1%} over {n} runs "
            f"(above {NOISY_CV:.0%}); compare medians with care, or use method PAIRED"
        )
    if result.HasField("paired") and result.paired.ratio_cv > NOISY_CV:
        out.append(
            f"noisy paired measurement: ratio cv is {result.paired.ratio_cv:.1%} over {n} pairs "
            f"(above {NOISY_CV:.0%})"
        )
    if n < s.min_runs:
        out.append(
            f"only {n} timed runs (min_runs is {s.min_runs}): max_duration_s "
            f"({s.max_duration_s:g} s) ran out first"
        )
    if s.providers and result.provider != s.providers[0]:
        out.append(
            f"requested provider {s.providers[0]} but onnxruntime ran the model's nodes on "
            f"{result.provider}"
        )
    return out
