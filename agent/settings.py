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
)  # fmt: skip
#: the table under its former name
DEFAULTS = SETTINGS
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
_BY_KEY: dict[str, Setting] = {
    spelling: s for s in SETTINGS if s.flag for spelling in (s.key, s.key.replace("-", "_"))
}
_ENUMS = ("graph_optimization", "method")


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
    """Fields that only limit a run and are left out of its identity."""
    return tuple(s.name for s in SETTINGS if not s.identity)


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


def _resolve_scalars(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings) -> None:
    """Threads and seed: the table's default and bounds; enums: UNSPECIFIED is the default
    (proto3 enums are open: unknown numbers arrive as plain ints)."""
    for name in ("intra_op_threads", "inter_op_threads", "seed"):
        s = setting(name)
        setattr(out, name, s.check(getattr(req, name)) if req.HasField(name) else s.default)
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


def _resolve_providers(req: agent_pb2.BenchmarkSettings, out: agent_pb2.BenchmarkSettings,
                       available_providers: Sequence[str]) -> None:
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


def resolve_settings(
    requested: agent_pb2.BenchmarkSettings,
    *,
    max_timeout_s: float,
    memory_cap_bytes: int,
    available_providers: Sequence[str],
) -> agent_pb2.BenchmarkSettings:
    """Return a new message with every field of ``requested`` set to a concrete value.

    Unset fields take the table's defaults (:data:`SETTINGS`); enums are never
    UNSPECIFIED; ``timeout_s`` and ``memory_cap_bytes`` default to the agent's
    limits (``max_timeout_s``, ``memory_cap_bytes``) and are capped at them.
    Defaults give way to explicit values where they would clash
    (``max_runs=5`` alone lowers the default ``min_runs`` to 5; the default
    ``max_duration_s`` is at most half of ``timeout_s``). ``requested`` is not
    modified.

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
    out = agent_pb2.BenchmarkSettings()
    _resolve_limits(requested, out, max_timeout_s, memory_cap_bytes)
    _resolve_runs(requested, out)
    _resolve_durations(requested, out, max_timeout_s)
    _resolve_scalars(requested, out)
    _resolve_providers(requested, out, available_providers)
    _resolve_shapes(requested, out)
    return out


def check_resolved(settings: agent_pb2.BenchmarkSettings) -> None:
    """Raise ValueError unless ``settings`` came out of :func:`resolve_settings`.

    Checks only that every optional field is set and the enums are concrete,
    which is what the runner relies on.
    """
    missing = [
        s.name for s in SETTINGS
        if not s.repeated and s.name not in _ENUMS and not settings.HasField(s.name)
    ]  # fmt: skip
    if missing:
        raise ValueError(f"benchmark settings are not resolved; unset fields: {missing}")
    if any(getattr(settings, name) == 0 for name in _ENUMS) or not settings.providers:
        raise ValueError("benchmark settings are not resolved: an enum or providers is unset")
