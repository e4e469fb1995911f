"""Benchmark settings, listed once: the table, and the resolution and validation of a request.

**The table.** :data:`SETTINGS` has one :class:`Setting` per field of
:class:`~fleetnas.api.v1.agent_pb2.BenchmarkSettings`: its proto field name,
value type, the agent's default, a one-line help, its command-line flag (and
``k=v`` key: the flag without dashes), the CLI keyword (the parameter name
of :func:`~fleetnas.agent.settings_args.build_settings`), numeric bounds, and
whether it belongs to the measurement's identity (every setting but the run
limits ``timeout_s`` and ``memory_cap_bytes``). Everything that spells
settings is generated from it:

* the agent's argparse flags: :func:`fleetnas.agent.settings_args.add_settings_flags`;
* requests from CLI values: :func:`~fleetnas.agent.settings_args.build_settings`
  (keywords), :func:`~fleetnas.agent.settings_args.settings_from_pairs` (``k=v``
  target keys such as ``threads=2,opt-level=basic``);
* click options, on the controller's side, from the same fields::

      for s in flag_settings():
          click.option(s.flag, s.keyword, multiple=s.repeated, metavar=s.metavar,
                       type=click.Choice(s.choice_names) if s.choices else s.value_type,
                       help=s.help_text())

  and turn the command's values into a request with ``build_settings(**values)``;
* help texts show each default from the table (:meth:`Setting.help_text`);
* :func:`identity_fields` / :func:`run_limit_fields` say which fields a cache
  key covers.

Lookups: :func:`setting` by proto name, :func:`setting_for_key` by flag or
``k=v`` key (``--min-runs``, ``min-runs``, ``min_runs``); :func:`default`.

**Resolution.** A request may leave any optional field unset.
:func:`resolve_settings` returns a new message with every field set to the
concrete value the benchmark will use; that resolved message is echoed in
the result and is part of the measurement's identity (two measurements are
comparable only if their resolved settings match). Invalid requests raise
:class:`~fleetnas.agent.errors.InvalidSettings` with a message that names the
field, the (shortened) bad value and what is allowed; oversized strings and
lists are refused before anything reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleetnas.agent.errors import InvalidSettings, echo
from fleetnas.agent.model_format import format_name
from fleetnas.agent.runtimes import (
    DEFAULT_ACCELERATORS,
    ONNXRUNTIME,
    RUNTIME_FOR_FORMAT,
    find_runtime,
)
from fleetnas.api.v1 import agent_pb2

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
DEFAULT_PROFILE_RUNS = 10
MAX_PROFILE_RUNS = 1000
# Accelerators with a switch that lets an fp32 model run fp16 kernels.
FP16_ACCELERATORS = ("TensorrtExecutionProvider", "GPU")

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

OPT_LEVELS: dict[str, int] = {
    "disable": agent_pb2.GRAPH_OPTIMIZATION_DISABLE,
    "basic": agent_pb2.GRAPH_OPTIMIZATION_BASIC,
    "extended": agent_pb2.GRAPH_OPTIMIZATION_EXTENDED,
    "all": agent_pb2.GRAPH_OPTIMIZATION_ALL,
}
METHODS: dict[str, int] = {"plain": agent_pb2.METHOD_PLAIN, "paired": agent_pb2.METHOD_PAIRED}


def parse_bool(text: str) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case) as a bool; ValueError otherwise."""
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{text!r} is not a boolean: use true or false")


def parse_shape(text: str) -> agent_pb2.InputShape:
    """Parse ``NAME=D1xD2x...`` (e.g. ``x=1x3x224x224``) into an InputShape."""
    name, sep, dims_text = text.partition("=")
    if not sep or not name or not dims_text:
        raise ValueError(f"bad shape {text!r}: expected NAME=D1xD2x..., e.g. x=1x3x224x224")
    try:
        dims = [int(d) for d in dims_text.lower().split("x")]
    except ValueError:
        raise ValueError(f"bad shape {text!r}: dimensions must be integers") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"bad shape {text!r}: dimensions must be positive")
    return agent_pb2.InputShape(name=name, dims=dims)


@dataclass(frozen=True)
class Setting:
    """One benchmark setting (a field of ``BenchmarkSettings``); see the module docstring.

    ``default`` is in proto terms (an enum's number, a tuple for a repeated
    field); ``None`` means the agent's own limit, described by
    ``default_text``, which also overrides how help shows a computed
    default. ``value_type`` is what one CLI value converts to (per element
    for a repeated field; ``str`` for choices, which ``choices`` maps to
    proto numbers), by ``parse`` where one is given. ``bounds`` (inclusive; ``None`` = open) apply to
    numbers; ``bound_note`` follows their message. An empty ``flag``
    means the setting has no command-line spelling.
    """

    name: str
    value_type: type
    default: object
    help: str
    flag: str = ""
    keyword: str = ""
    bounds: tuple[float | None, float | None] = (None, None)
    bound_note: str = ""
    identity: bool = True
    repeated: bool = False
    choices: Mapping[str, int] = field(default_factory=dict)
    metavar: str | None = None
    default_text: str = ""
    parse: Callable[[str], object] | None = None

    @property
    def key(self) -> str:
        """The ``k=v`` key: the flag without its dashes (``min-runs``)."""
        return self.flag.lstrip("-")

    @property
    def choice_names(self) -> list[str]:
        return sorted(self.choices)

    def default_shown(self) -> str:
        """The default as a user spells it (``all``, ``CPUExecutionProvider``, ``0.5``)."""
        if self.default_text:
            return self.default_text
        if self.choices:
            return next(n for n, v in self.choices.items() if v == self.default)
        if isinstance(self.default, tuple):
            return ", ".join(str(v) for v in self.default) or "none"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def help_text(self) -> str:
        """``help`` followed by the default, e.g. ``... (default: 1)``."""
        return f"{self.help} (default: {self.default_shown()})"

    def check(self, value: float) -> float:
        """``value`` if it lies within ``bounds``, else InvalidSettings naming them."""
        low, high = self.bounds
        if (low is None or value >= low) and (high is None or value <= high):
            return value
        if low is not None and high is not None and low > 0:
            allowed = f"must be between {low:g} and {high:g}"
        elif high is not None:
            allowed = f"must be <= {high:g}"
        else:
            allowed = f"must be >= {low:g}"
        raise _bad(self.name, value, f"{allowed}{self.bound_note}")


_THREADS_NOTE = " (0 = onnxruntime's default)"
SETTINGS: tuple[Setting, ...] = (
    Setting("warmup_runs", int, DEFAULT_WARMUP_RUNS,
            "untimed runs after the first run; the first runs are slow",
            "--warmup", "warmup", (0, MAX_WARMUP_RUNS)),
    Setting("min_runs", int, DEFAULT_MIN_RUNS,
            "the timed loop runs at least this many times (unless a max hits)",
            "--min-runs", "min_runs", (1, MAX_RUNS_LIMIT)),
    Setting("min_duration_s", float, DEFAULT_MIN_DURATION_S,
            "... and for at least this many seconds", "--min-duration", "min_duration"),
    Setting("max_runs", int, DEFAULT_MAX_RUNS, "the timed loop stops after this many runs",
            "--max-runs", "max_runs", (1, MAX_RUNS_LIMIT)),
    Setting("max_duration_s", float, DEFAULT_MAX_DURATION_S,
            "the timed loop stops after this many seconds", "--max-duration", "max_duration",
            default_text=f"{DEFAULT_MAX_DURATION_S:g}, at most half of the timeout"),
    Setting("intra_op_threads", int, DEFAULT_THREADS,
            "onnxruntime intra-op threads (0 lets onnxruntime choose); 1 is reproducible and makes "
            "per-block latencies add up", "--threads", "threads", (0, MAX_THREADS),
            _THREADS_NOTE),
    Setting("inter_op_threads", int, DEFAULT_THREADS,
            "onnxruntime inter-op threads (0 lets onnxruntime choose)", "--inter-threads",
            "inter_threads", (0, MAX_THREADS), _THREADS_NOTE),
    Setting("providers", str, DEFAULT_PROVIDERS,
            "execution provider; repeat in order of preference", "--provider", "providers",
            repeated=True, metavar="NAME"),
    Setting("graph_optimization", str, DEFAULT_GRAPH_OPTIMIZATION,
            "onnxruntime graph optimisation level (all is 2-7x faster than disable)",
            "--opt-level", "opt_level", choices=OPT_LEVELS),
    Setting("input_shapes", str, (), "concrete dims of a dynamic input; repeat per input",
            "--shape", "shapes", repeated=True, metavar="NAME=D1xD2x...", parse=parse_shape),
    Setting("seed", int, DEFAULT_SEED, "seed of the random input tensors", "--seed", "seed"),
    Setting("method", str, DEFAULT_METHOD,
            "plain, or paired with the agent's reference model", "--method", "method",
            choices=METHODS),
    Setting("timeout_s", float, None, "wall-clock limit of one benchmark in seconds",
            "--timeout", "timeout", identity=False,
            default_text="the agent's --max-timeout, which also caps it"),
    Setting("memory_cap_bytes", int, None, "resident-memory cap of the benchmark worker",
            identity=False, default_text="the agent's --memory-cap-mb, which also caps it"),
    Setting("runtime", str, "", "the runtime that runs the model: onnxruntime or litert",
            "--runtime", "runtime", metavar="NAME",
            default_text="by the model's format: onnxruntime for ONNX, litert for TFLite"),
    Setting("profile", bool, False,
            "also profile per operator, in extra runs after the timed loop", "--profile",
            "profile", identity=False, default_text="off", parse=parse_bool),
    Setting("profile_runs", int, DEFAULT_PROFILE_RUNS, "profiled runs (with --profile)",
            "--profile-runs", "profile_runs", (1, MAX_PROFILE_RUNS), identity=False),
    Setting("fp16", bool, False,
            "let TensorRT (or LiteRT's GPU delegate) run an fp32 model with fp16 kernels",
            "--fp16", "fp16", default_text="off", parse=parse_bool),
    Setting("agent_defaults", str, (),
            "output only: the settings the agent filled in from its own serve flags",
            identity=False, repeated=True),
)  # fmt: skip
#: the table under its former name
DEFAULTS = SETTINGS
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
_BY_KEY: dict[str, Setting] = {
    spelling: s for s in SETTINGS if s.flag for spelling in (s.key, s.key.replace("-", "_"))
}
_ENUMS = ("graph_optimization", "method")
# What a v1 echo (which has no runtime field) meant: every v1 measurement ran onnxruntime.
_V1_RUNTIME = ONNXRUNTIME


def setting(name: str) -> Setting:
    """The setting of proto field ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


def setting_for_key(key: str) -> Setting:
    """The setting spelled ``key``: a flag or ``k=v`` key (``--min-runs``, ``min-runs``,
    ``min_runs``). KeyError, naming the valid keys, when none is."""
    found = _BY_KEY.get(key.strip().lstrip("-"))
    if found is None:
        raise KeyError(f"no benchmark setting {key!r}; keys: {', '.join(s.key for s in flag_settings())}")
    return found


def flag_settings() -> tuple[Setting, ...]:
    """The settings that have a command-line flag, in table order."""
    return tuple(s for s in SETTINGS if s.flag)


def default(name: str) -> object:
    """The default of setting ``name`` (KeyError if there is no such setting)."""
    return _BY_NAME[name].default


def identity_fields() -> tuple[str, ...]:
    """Fields a measurement's identity (the cost DB's cache key) covers."""
    return tuple(s.name for s in SETTINGS if s.identity)


def run_limit_fields() -> tuple[str, ...]:
    """Fields left out of a measurement's identity: run limits, profiling, output-only notes."""
    return tuple(s.name for s in SETTINGS if not s.identity)


def identity_settings(settings: agent_pb2.BenchmarkSettings) -> agent_pb2.BenchmarkSettings:
    """The part of resolved ``settings`` a measurement's identity covers, normalised.

    A copy without the :func:`run_limit_fields`, with the enum aliases
    spelled out (UNSPECIFIED -> the default) and ``runtime`` cleared when it
    is ``onnxruntime``, which is what a v1 agent's echo (no runtime field)
    meant: hash this, and measurements of v1 and later agents keep one key.
    """
    identity = agent_pb2.BenchmarkSettings()
    identity.CopyFrom(settings)
    for name in run_limit_fields():
        identity.ClearField(name)
    for name in _ENUMS:
        if getattr(identity, name) == 0:
            setattr(identity, name, setting(name).default)
    if identity.runtime == _V1_RUNTIME:
        identity.ClearField("runtime")
    return identity


# -- resolution ---------------------------------------------------------------------


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
    _cap_name("runtime", "a runtime name", req.runtime)
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


def _resolve_limits(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings,
                    max_timeout_s: float, memory_cap_bytes: int) -> None:
    """timeout_s and memory_cap_bytes: default to the agent's limits, capped at them."""
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


def _resolve_runs(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings) -> None:
    """warmup_runs, min_runs, max_runs: a lone explicit bound moves the other default."""
    for name in ("warmup_runs", "min_runs", "max_runs"):
        if req.HasField(name):
            setattr(out, name, setting(name).check(getattr(req, name)))
    if not req.HasField("warmup_runs"):
        out.warmup_runs = DEFAULT_WARMUP_RUNS
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


def _resolve_durations(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings,
                       max_timeout_s: float) -> None:
    """min/max_duration_s, after the timeout: the default max is at most half of it."""
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


def _resolve_scalars(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings,
                     defaults: agent_pb2.DeviceDefaults) -> None:
    """Threads, seed, profile runs: the table's default and bounds (intra-op threads: the
    agent's device-side default first); enums: UNSPECIFIED is the default (proto3 enums
    are open: unknown numbers arrive as plain ints)."""
    for name in ("intra_op_threads", "inter_op_threads", "seed", "profile_runs"):
        s = setting(name)
        if req.HasField(name):
            setattr(out, name, s.check(getattr(req, name)))
        elif name == "intra_op_threads" and defaults.HasField("intra_op_threads"):
            out.intra_op_threads = s.check(defaults.intra_op_threads)
            out.agent_defaults.append(name)
        else:
            setattr(out, name, s.default)
    out.profile = req.profile
    for name in _ENUMS:
        s = setting(name)
        value = getattr(req, name)
        if value == 0:  # UNSPECIFIED
            value = s.default
        elif value not in s.choices.values():
            spelled = ", ".join(n.upper() for n in s.choices)
            raise _bad(name, value, f"must be one of {spelled} (UNSPECIFIED means "
                                    f"{s.default_shown().upper()})")
        setattr(out, name, value)


def _resolve_runtime(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings,
                     runtimes: Sequence[agent_pb2.RuntimeInfo],
                     model_format: int) -> agent_pb2.RuntimeInfo:
    """runtime: the request's, else the format's; it must be available and run the format."""
    name = req.runtime or RUNTIME_FOR_FORMAT.get(model_format, "")
    if not name:
        raise _bad("runtime", name, f"no runtime runs {format_name(model_format)} models")
    info = find_runtime(runtimes, name)
    if info is None:
        known = [r.name for r in runtimes]
        raise _bad("runtime", name, f"is not a runtime of this agent; runtimes: {known}")
    if not info.available:
        raise _bad("runtime", name, f"is not available on this agent: {info.reason}")
    if model_format not in info.formats:
        runs = ", ".join(format_name(f) for f in info.formats)
        raise _bad("runtime", name, f"runs {runs} models, not {format_name(model_format)}; "
                                    "leave runtime unset to choose by the model's format")
    out.runtime = name
    return info


def _resolve_providers(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings,
                       runtime: agent_pb2.RuntimeInfo,
                       defaults: agent_pb2.DeviceDefaults) -> None:
    """providers: the request's, else the agent's device-side default where the runtime has
    all of it, else the runtime's default; each one an accelerator of the runtime."""
    available = list(runtime.accelerators)
    providers = list(req.providers)
    if not providers and defaults.providers and set(defaults.providers) <= set(available):
        providers = list(defaults.providers)
        out.agent_defaults.append("providers")
    providers = providers or list(DEFAULT_ACCELERATORS.get(runtime.name, ()))
    for provider in providers:
        if provider not in available:
            raise _bad("providers", provider, f"is not available for runtime {runtime.name} on "
                                              f"this agent; available: {available}")
    if len(set(providers)) != len(providers):
        raise _bad("providers", providers, "must not list a provider twice")
    out.providers.extend(providers)
    if req.fp16 and not set(FP16_ACCELERATORS) & set(providers):
        raise _bad("fp16", True, f"needs a provider with an fp16 switch ({', '.join(FP16_ACCELERATORS)}); "
                                 "an fp16 model runs in fp16 without it")
    out.fp16 = req.fp16


def _resolve_shapes(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings) -> None:
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


def _v1_runtimes(available_providers: Sequence[str]) -> list[agent_pb2.RuntimeInfo]:
    """The runtimes of an agent described only by its v1 fields: onnxruntime alone."""
    return [agent_pb2.RuntimeInfo(
        name=ONNXRUNTIME, accelerators=list(available_providers),
        formats=[agent_pb2.MODEL_FORMAT_ONNX], available=True,
    )]  # fmt: skip


def resolve_settings(
    requested: agent_pb2.BenchmarkSettings,
    *,
    max_timeout_s: float,
    memory_cap_bytes: int,
    available_providers: Sequence[str],
    runtimes: Sequence[agent_pb2.RuntimeInfo] = (),
    defaults: agent_pb2.DeviceDefaults | None = None,
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
) -> agent_pb2.BenchmarkSettings:
    """Return a new message with every field of ``requested`` set to a concrete value.

    Unset fields take the table's defaults (:data:`SETTINGS`); enums are never
    UNSPECIFIED; ``timeout_s`` and ``memory_cap_bytes`` default to the agent's
    limits (``max_timeout_s``, ``memory_cap_bytes``) and are capped at them.
    Defaults give way to explicit values where they would clash
    (``max_runs=5`` alone lowers the default ``min_runs`` to 5; the default
    ``max_duration_s`` is at most half of ``timeout_s``). ``requested`` is not
    modified.

    ``runtime`` defaults to the one that runs ``model_format`` (a
    ``ModelFormat``); ``runtimes`` are Describe's (empty: onnxruntime alone,
    with ``available_providers`` as its accelerators). ``providers`` must be
    accelerators of the runtime. The agent's device-side ``defaults`` fill
    an unset ``intra_op_threads`` and empty ``providers`` (where the runtime
    has them all), and ``agent_defaults`` names the fields they filled; the
    request's own ``agent_defaults`` is ignored.

    Raises:
        InvalidSettings: a value is out of range, oversized or inconsistent;
            the message names the field and value and says what is allowed.
        ValueError: the agent's own limits are not positive (a programming error).
    """
    if not max_timeout_s > 0 or math.isinf(max_timeout_s):
        raise ValueError(f"max_timeout_s must be a positive finite number, got {max_timeout_s}")
    if memory_cap_bytes <= 0:
        raise ValueError(f"memory_cap_bytes must be positive, got {memory_cap_bytes}")
    _check_sizes(requested)
    defaults = defaults or agent_pb2.DeviceDefaults()
    out = agent_pb2.BenchmarkSettings()
    _resolve_limits(requested, out, max_timeout_s, memory_cap_bytes)
    _resolve_runs(requested, out)
    _resolve_durations(requested, out, max_timeout_s)
    _resolve_scalars(requested, out, defaults)
    runtime = _resolve_runtime(requested, out, runtimes or _v1_runtimes(available_providers),
                               model_format)
    _resolve_providers(requested, out, runtime, defaults)
    _resolve_shapes(requested, out)
    return out


def resolve_for_description(
    requested: agent_pb2.BenchmarkSettings,
    description: agent_pb2.DeviceDescription,
    *,
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
) -> agent_pb2.BenchmarkSettings:
    """:func:`resolve_settings` exactly as the agent that sent ``description`` resolves it:
    its limits, runtimes (or v1 providers) and device-side defaults. Raises as it does."""
    return resolve_settings(
        requested,
        max_timeout_s=description.limits.max_timeout_s,
        memory_cap_bytes=description.limits.memory_cap_bytes,
        available_providers=list(description.runtime.available_providers),
        runtimes=list(description.runtimes),
        defaults=description.defaults,
        model_format=model_format,
    )


def check_resolved(settings: agent_pb2.BenchmarkSettings) -> None:
    """Raise ValueError unless ``settings`` came out of :func:`resolve_settings`.

    Checks only that every optional field is set and the enums are concrete,
    which is what the runner relies on.
    """
    fields = settings.DESCRIPTOR.fields_by_name
    missing = [
        s.name for s in SETTINGS
        if fields[s.name].has_presence and not fields[s.name].message_type
        and not settings.HasField(s.name)
    ]  # fmt: skip
    if missing:
        raise ValueError(f"benchmark settings are not resolved; unset fields: {missing}")
    if any(getattr(settings, name) == 0 for name in _ENUMS) or not settings.providers:
        raise ValueError("benchmark settings are not resolved: an enum or providers is unset")
    if not settings.runtime:
        raise ValueError("benchmark settings are not resolved: runtime is unset")
