"""Benchmark settings: the defaults, listed once, and their resolution and validation.

A request's :class:`~fleetnas.api.v1.agent_pb2.BenchmarkSettings` may leave
any optional field unset. :func:`resolve_settings` returns a new message with
every field set to the concrete value the benchmark will use; that resolved
message is echoed in the result and is part of the measurement's identity
(two measurements are comparable only if their resolved settings match).

Invalid requests raise :class:`~fleetnas.agent.errors.InvalidSettings` with a
message that names the field, the bad value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fleetnas.agent.errors import InvalidSettings, echo
from fleetnas.api.v1 import agent_pb2


@dataclass(frozen=True)
class Setting:
    """One optional benchmark setting: its proto field name, default and help."""

    name: str
    default: object
    help: str


DEFAULT_WARMUP_RUNS = 10
DEFAULT_MIN_RUNS = 30
DEFAULT_MIN_DURATION_S = 0.5
# High enough that min_duration_s, not the run cap, bounds the timed loop of
# sub-0.1 ms models: with 1000 runs a 0.05 ms model was timed for only 50 ms
# and its median moved 5-10% between calls (bench_agent_fidelity).
DEFAULT_MAX_RUNS = 10_000
DEFAULT_MAX_DURATION_S = 10.0
DEFAULT_THREADS = 1
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
DEFAULT_GRAPH_OPTIMIZATION = agent_pb2.GRAPH_OPTIMIZATION_ALL
DEFAULT_SEED = 0
DEFAULT_METHOD = agent_pb2.METHOD_PLAIN

DEFAULTS: tuple[Setting, ...] = (
    Setting(
        "warmup_runs",
        DEFAULT_WARMUP_RUNS,
        "untimed runs after the first run; the first runs are slow",
    ),
    Setting(
        "min_runs",
        DEFAULT_MIN_RUNS,
        "the timed loop runs at least this many times (unless a max hits)",
    ),
    Setting("min_duration_s", DEFAULT_MIN_DURATION_S, "... and for at least this many seconds"),
    Setting("max_runs", DEFAULT_MAX_RUNS, "the timed loop stops after this many runs"),
    Setting(
        "max_duration_s",
        DEFAULT_MAX_DURATION_S,
        "the timed loop stops after this many seconds (default: at most half of timeout_s)",
    ),
    Setting(
        "intra_op_threads",
        DEFAULT_THREADS,
        "onnxruntime intra-op threads (0 = its default); 1 is reproducible and makes "
        "per-block latencies add up; part of the measurement's identity",
    ),
    Setting("inter_op_threads", DEFAULT_THREADS, "onnxruntime inter-op threads (0 = its default)"),
    Setting("providers", DEFAULT_PROVIDERS, "execution providers, in preference order"),
    Setting(
        "graph_optimization",
        DEFAULT_GRAPH_OPTIMIZATION,
        "onnxruntime graph optimisation level; UNSPECIFIED means ALL (2-7x faster than DISABLE)",
    ),
    Setting("seed", DEFAULT_SEED, "seed of the random input tensors"),
    Setting("method", DEFAULT_METHOD, "PLAIN or PAIRED; UNSPECIFIED means PLAIN"),
    Setting("timeout_s", None, "wall-clock limit of one benchmark; default and cap: the agent's"),
    Setting(
        "memory_cap_bytes",
        None,
        "resident-memory cap of the benchmark worker; default and cap: the agent's",
    ),
)
_DEFAULT: dict[str, object] = {s.name: s.default for s in DEFAULTS}

MAX_THREADS = 256
MAX_RUNS_LIMIT = 100_000
MAX_WARMUP_RUNS = 10_000
# Below this a worker cannot even hold onnxruntime plus a session (~85 MiB RSS).
MIN_MEMORY_CAP_BYTES = 128 * 1024 * 1024
# Sizes of what a client may send. onnxruntime has ~20 execution providers,
# with names of ~30 characters; ONNX models rarely have more than a few inputs
# or a rank above 8. At these caps a resolved request stays far below the
# worker's 1 MiB job line, and no value quoted back can swell a status detail.
MAX_PROVIDERS = 16
MAX_NAME_CHARS = 256
MAX_INPUT_SHAPES = 256
MAX_RANK = 32
MAX_DIM = 2**31 - 1

_GRAPH_OPTIMIZATIONS = {
    agent_pb2.GRAPH_OPTIMIZATION_DISABLE,
    agent_pb2.GRAPH_OPTIMIZATION_BASIC,
    agent_pb2.GRAPH_OPTIMIZATION_EXTENDED,
    agent_pb2.GRAPH_OPTIMIZATION_ALL,
}
_METHODS = {agent_pb2.METHOD_PLAIN, agent_pb2.METHOD_PAIRED}


def default(name: str) -> object:
    """The default of setting ``name`` (KeyError if there is no such setting)."""
    return _DEFAULT[name]


def _bad(field: str, value: object, allowed: str) -> InvalidSettings:
    return InvalidSettings(f"invalid benchmark setting {field}={echo(value)}: {allowed}")


def _cap_count(field: str, count: int, cap: int) -> None:
    if count > cap:
        raise InvalidSettings(
            f"invalid benchmark setting {field}: {count} entries; at most {cap}"
        )


def _cap_name(field: str, what: str, name: str) -> None:
    if len(name) > MAX_NAME_CHARS:
        raise _bad(field, name,
                   f"{what} has at most {MAX_NAME_CHARS} characters, this one {len(name)}")


def _check_sizes(req: agent_pb2.BenchmarkSettings) -> None:
    """Refuse oversized strings and lists before anything else reads (or quotes) them."""
    _cap_count("providers", len(req.providers), MAX_PROVIDERS)
    for provider in req.providers:
        _cap_name("providers", "a provider name", provider)
    _cap_count("input_shapes", len(req.input_shapes), MAX_INPUT_SHAPES)
    for shape in req.input_shapes:
        _cap_name("input_shapes.name", "an input name", shape.name)
        field = f"input_shapes[{shape.name}].dims"
        if len(shape.dims) > MAX_RANK:
            raise InvalidSettings(
                f"invalid benchmark setting {field}: {len(shape.dims)} dimensions; "
                f"at most {MAX_RANK}"
            )
        for dim in shape.dims:
            if dim > MAX_DIM:
                raise _bad(field, dim, f"a dimension is at most {MAX_DIM}")


def _finite(field: str, value: float, *, positive: bool) -> float:
    if math.isnan(value) or math.isinf(value):
        raise _bad(field, value, "must be a finite number of seconds")
    if positive and value <= 0:
        raise _bad(field, value, "must be > 0 seconds")
    if value < 0:
        raise _bad(field, value, "must be >= 0 seconds")
    return value


def resolve_settings(
    requested: agent_pb2.BenchmarkSettings,
    *,
    max_timeout_s: float,
    memory_cap_bytes: int,
    available_providers: Sequence[str],
) -> agent_pb2.BenchmarkSettings:
    """Return a new message with every field of ``requested`` set to a concrete value.

    Unset fields take :data:`DEFAULTS`; enums are never UNSPECIFIED;
    ``timeout_s`` and ``memory_cap_bytes`` default to the agent's limits
    (``max_timeout_s``, ``memory_cap_bytes``) and are capped at them. Defaults
    give way to explicit values where they would clash (``max_runs=5`` alone
    lowers the default ``min_runs`` to 5; the default ``max_duration_s`` is at
    most half of ``timeout_s``). ``requested`` is not modified.

    Raises:
        InvalidSettings: a value is out of range or inconsistent; the message
            names the field and value and says what is allowed.
        ValueError: the agent's own limits are not positive (a programming error).
    """
    if not max_timeout_s > 0 or math.isinf(max_timeout_s):
        raise ValueError(f"max_timeout_s must be a positive finite number, got {max_timeout_s}")
    if memory_cap_bytes <= 0:
        raise ValueError(f"memory_cap_bytes must be positive, got {memory_cap_bytes}")
    req = requested
    _check_sizes(req)
    out = agent_pb2.BenchmarkSettings()

    # Limits first: the duration defaults depend on the timeout.
    if req.HasField("timeout_s"):
        out.timeout_s = min(_finite("timeout_s", req.timeout_s, positive=True), max_timeout_s)
    else:
        out.timeout_s = max_timeout_s
    if req.HasField("memory_cap_bytes"):
        if req.memory_cap_bytes < MIN_MEMORY_CAP_BYTES:
            raise _bad(
                "memory_cap_bytes",
                req.memory_cap_bytes,
                f"must be at least {MIN_MEMORY_CAP_BYTES} bytes "
                f"({MIN_MEMORY_CAP_BYTES >> 20} MiB; the worker itself needs ~85 MiB); "
                "leave it unset to use the agent's cap",
            )
        out.memory_cap_bytes = min(req.memory_cap_bytes, memory_cap_bytes)
    else:
        out.memory_cap_bytes = memory_cap_bytes

    # Runs.
    if req.HasField("warmup_runs"):
        if req.warmup_runs > MAX_WARMUP_RUNS:
            raise _bad("warmup_runs", req.warmup_runs, f"must be <= {MAX_WARMUP_RUNS}")
        out.warmup_runs = req.warmup_runs
    else:
        out.warmup_runs = DEFAULT_WARMUP_RUNS
    if req.HasField("max_runs"):
        if not 1 <= req.max_runs <= MAX_RUNS_LIMIT:
            raise _bad("max_runs", req.max_runs, f"must be between 1 and {MAX_RUNS_LIMIT}")
        out.max_runs = req.max_runs
    if req.HasField("min_runs"):
        if not 1 <= req.min_runs <= MAX_RUNS_LIMIT:
            raise _bad("min_runs", req.min_runs, f"must be between 1 and {MAX_RUNS_LIMIT}")
        out.min_runs = req.min_runs
    if not req.HasField("max_runs"):
        out.max_runs = max(DEFAULT_MAX_RUNS, out.min_runs if req.HasField("min_runs") else 0)
    if not req.HasField("min_runs"):
        out.min_runs = min(DEFAULT_MIN_RUNS, out.max_runs)
    if out.min_runs > out.max_runs:
        raise _bad(
            "min_runs",
            out.min_runs,
            f"must be <= max_runs ({out.max_runs}); lower one or raise the other",
        )

    # Durations.
    if req.HasField("max_duration_s"):
        out.max_duration_s = _finite("max_duration_s", req.max_duration_s, positive=True)
        if out.max_duration_s >= out.timeout_s:
            raise _bad(
                "max_duration_s",
                out.max_duration_s,
                f"must be below timeout_s ({out.timeout_s:g} s, capped by the agent's "
                f"max timeout {max_timeout_s:g} s) to leave time for session creation "
                "and warm-up; lower max_duration_s or raise timeout_s",
            )
    if req.HasField("min_duration_s"):
        out.min_duration_s = _finite("min_duration_s", req.min_duration_s, positive=False)
    if not req.HasField("max_duration_s"):
        default_max = min(DEFAULT_MAX_DURATION_S, out.timeout_s / 2)
        if req.HasField("min_duration_s"):
            default_max = max(default_max, min(out.min_duration_s, out.timeout_s / 2))
        out.max_duration_s = default_max
    if not req.HasField("min_duration_s"):
        out.min_duration_s = min(DEFAULT_MIN_DURATION_S, out.max_duration_s)
    if out.min_duration_s > out.max_duration_s:
        raise _bad(
            "min_duration_s",
            out.min_duration_s,
            f"must be <= max_duration_s ({out.max_duration_s:g} s; by default at most half "
            f"of timeout_s {out.timeout_s:g} s)",
        )

    # Threads.
    for field in ("intra_op_threads", "inter_op_threads"):
        if req.HasField(field):
            value = getattr(req, field)
            if value > MAX_THREADS:
                raise _bad(field, value, f"must be <= {MAX_THREADS} (0 = onnxruntime's default)")
            setattr(out, field, value)
        else:
            setattr(out, field, DEFAULT_THREADS)

    # Providers.
    providers = list(req.providers) or list(DEFAULT_PROVIDERS)
    available = list(available_providers)
    for provider in providers:
        if provider not in available:
            raise _bad(
                "providers", provider, f"is not available on this agent; available: {available}"
            )
    if len(set(providers)) != len(providers):
        raise _bad("providers", providers, "must not list a provider twice")
    out.providers.extend(providers)

    # Enums (proto3 enums are open: unknown numbers arrive as plain ints).
    if req.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_UNSPECIFIED:
        out.graph_optimization = DEFAULT_GRAPH_OPTIMIZATION
    elif req.graph_optimization in _GRAPH_OPTIMIZATIONS:
        out.graph_optimization = req.graph_optimization
    else:
        raise _bad(
            "graph_optimization",
            req.graph_optimization,
            "must be one of DISABLE, BASIC, EXTENDED, ALL (UNSPECIFIED means ALL)",
        )
    if req.method == agent_pb2.METHOD_UNSPECIFIED:
        out.method = DEFAULT_METHOD
    elif req.method in _METHODS:
        out.method = req.method
    else:
        raise _bad("method", req.method, "must be PLAIN or PAIRED (UNSPECIFIED means PLAIN)")

    out.seed = req.seed if req.HasField("seed") else DEFAULT_SEED

    # Input shapes.
    seen: set[str] = set()
    for shape in req.input_shapes:
        if not shape.name:
            raise _bad(
                "input_shapes.name", shape.name, "must name the input (every input shape needs one)"
            )
        if shape.name in seen:
            raise _bad("input_shapes.name", shape.name, "must list each input only once")
        seen.add(shape.name)
        for dim in shape.dims:
            if dim <= 0:
                raise _bad(
                    f"input_shapes[{shape.name}].dims",
                    list(shape.dims),
                    "every dimension must be a positive integer",
                )
        out.input_shapes.add(name=shape.name, dims=list(shape.dims))
    return out


def check_resolved(settings: agent_pb2.BenchmarkSettings) -> None:
    """Raise ValueError unless ``settings`` came out of :func:`resolve_settings`.

    Checks only that every optional field is set and the enums are concrete,
    which is what the runner relies on.
    """
    missing = [
        s.name
        for s in DEFAULTS
        if s.name not in ("providers", "graph_optimization", "method")
        and not settings.HasField(s.name)
    ]
    if missing:
        raise ValueError(f"benchmark settings are not resolved; unset fields: {missing}")
    if (
        settings.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_UNSPECIFIED
        or settings.method == agent_pb2.METHOD_UNSPECIFIED
        or not settings.providers
    ):
        raise ValueError("benchmark settings are not resolved: an enum or providers is unset")
