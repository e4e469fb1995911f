"""What a search is: its space, targets (with their own benchmark settings), objectives, mode.

A :class:`SearchConfig` is JSON-safe (:meth:`SearchConfig.to_dict`) and is
stored with the search, so ``fleetnas search --resume ID`` rebuilds the same
search from the cost database alone.

A :class:`Target` is where one latency objective is measured: a device or a
device class of the fleet, **with its own benchmark settings request**. Two
targets may differ only in their settings (the same machine on 1 and on 2
intra-op threads are two targets); each gives the objective
``latency[<label or name>]``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf import json_format

from fleetnas.agent.settings import flag_settings, setting_for_key
from fleetnas.agent.settings_args import settings_from_pairs
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.driver._accuracy import (
    accuracy_label,
    check_accuracy_spec,
    sees_precision,
)
from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.driver._remote import ExecutorOptions
from fleetnas.controller.driver._source import BUILTIN_SOURCES, LatencySource, latency_source_class
from fleetnas.controller.scheduler import Target as Placement
from fleetnas.controller.search import (
    STRATEGY_GROUP,
    Objective,
    Strategy,
    StrategyPluginError,
    UnknownStrategy,
    available_strategies,
    parse_constraint,
    parse_objective,
    split_name,
    strategy_class,
)

#: the built-in latency sources (``--mode``)
MODES = tuple(BUILTIN_SOURCES)
TARGET_KINDS = ("device", "class")
ACCURACY_COSTS = ("auto", "cheap", "expensive")
CONFIG_FORMAT = "fleetnas.search-config/1"

#: ``NAME:key=value`` keys of a target -> (``build_settings`` keyword, value type), generated
#: from the agent's settings table: a setting added there is a target key here unchanged
SETTING_KEYS: dict[str, tuple[str, type]] = {s.key: (s.keyword, s.value_type) for s in flag_settings()}

#: a search's precisions by default: fp32 only, i.e. no precision gene
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32",)

#: the value names the driver computes itself (besides ``latency[T]``/``peak_memory[T]``/
#: ``energy[T]``)
ANALYTIC = ("params", "flops")
#: per-target values a device measures, and the source flag that says a mode knows them
MEASURED_ONLY = {"peak_memory": ("knows_peak_memory", "peak memory"),
                 "energy": ("knows_energy", "energy per inference")}


def _settings_dict(request: agent_pb2.BenchmarkSettings) -> dict[str, Any]:
    return json_format.MessageToDict(request, preserving_proto_field_name=True)


@dataclass(frozen=True)
class Target:
    """Where one latency objective is measured: a placement plus a settings request.

    ``where`` is the scheduler's placement (:class:`fleetnas.controller.scheduler.Target`:
    one device, or any device of a class); ``settings`` is a
    ``BenchmarkSettings`` request in its JSON form (proto field names; unset
    fields take the agent's defaults). ``label`` names the objective when
    given (``latency[label]``), else the placement's name does.
    ``precisions`` are the precisions this target's gene may take (canonical
    names, e.g. ``("int8", "fp32")``); ``None`` takes the search's
    (:attr:`SearchConfig.precisions`). Build with :meth:`device` or
    :meth:`device_class`.
    """

    where: Placement
    settings: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None
    precisions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.where, Placement):
            raise SearchConfigError(f"target {self.where!r}: expected a scheduler Target")
        try:
            split_name(f"latency[{self.key}]")
        except ValueError as exc:
            raise SearchConfigError(f"target {self.key!r}: not a valid objective qualifier") from exc
        try:
            self.request()
        except json_format.ParseError as exc:
            raise SearchConfigError(f"target {self.key!r}: bad settings {dict(self.settings)!r}: {exc}") from exc
        if self.precisions is not None:
            object.__setattr__(self, "precisions", canonical_precisions(
                self.precisions, f"target {self.key!r}: "))

    @classmethod
    def device(cls, name: str, settings: Mapping[str, Any] | None = None,
               label: str | None = None, precisions: Sequence[str] | None = None) -> Target:
        """The device ``name`` of the fleet."""
        return cls(Placement.device(name), dict(settings or {}), label, _tuple(precisions))

    @classmethod
    def device_class(cls, name: str, settings: Mapping[str, Any] | None = None,
                     label: str | None = None,
                     precisions: Sequence[str] | None = None) -> Target:
        """Any device of the class ``name``."""
        return cls(Placement.device_class(name), dict(settings or {}), label, _tuple(precisions))

    @property
    def name(self) -> str:
        """The device's or the class's name."""
        return self.where.name

    @property
    def is_class(self) -> bool:
        return self.where.is_class

    @property
    def kind(self) -> str:
        """``"class"`` or ``"device"`` (as stored and printed)."""
        return "class" if self.is_class else "device"

    @property
    def key(self) -> str:
        """The qualifier of this target's objectives."""
        return self.label or self.name

    @property
    def objective(self) -> str:
        return f"latency[{self.key}]"

    def request(self) -> agent_pb2.BenchmarkSettings:
        """The benchmark settings request sent with every job of this target."""
        return json_format.ParseDict(dict(self.settings), agent_pb2.BenchmarkSettings())

    def describe(self) -> str:
        """E.g. ``class cpu-2t (intra_op_threads=2)``."""
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        text = f"{self.kind} {self.name}"
        if self.label:
            text += f" as {self.label}"
        if self.precisions is not None:
            shown = ", ".join(filter(None, [shown, "precision=" + "|".join(self.precisions)]))
        return text + (f" ({shown})" if shown else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; ``precisions`` only when set (targets stored before it read the same)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "settings": dict(self.settings),
               "label": self.label}
        if self.precisions is not None:
            out["precisions"] = list(self.precisions)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        return cls.of_kind(str(data["name"]), str(data.get("kind", "device")),
                           data.get("settings"), data.get("label"), data.get("precisions"))

    @classmethod
    def of_kind(cls, name: str, kind: str, settings: Mapping[str, Any] | None = None,
                label: str | None = None, precisions: Sequence[str] | None = None) -> Target:
        """``kind`` is ``"device"`` or ``"class"`` (the stored and typed spelling)."""
        if kind not in TARGET_KINDS:
            raise SearchConfigError(f"target {name!r}: kind {kind!r}, expected device or class")
        make = cls.device_class if kind == "class" else cls.device
        return make(name, settings, label, precisions)


def _tuple(precisions: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if precisions is None else tuple(precisions)


def canonical_precisions(names: Sequence[str] | str, context: str = "") -> tuple[str, ...]:
    """``"fp32,int8"``, ``"int8|fp32"`` or a sequence of names -> canonical names in order.

    SearchConfigError (prefixed by ``context``) for an unknown, repeated or
    missing name. Imports the compress package's precision table lazily.
    """
    text = names if isinstance(names, str) else ",".join(str(n) for n in names)
    if text == "fp32":  # the default: no need to import the compress package (onnx, torch)
        return DEFAULT_PRECISIONS
    from fleetnas.controller.compress import UnknownPrecision, parse_precisions

    try:
        return tuple(p.value for p in parse_precisions(text))
    except UnknownPrecision as exc:
        raise SearchConfigError(f"{context}{exc}") from None


def parse_target(
    text: str, kind: str, base: agent_pb2.BenchmarkSettings | None = None
) -> Target:
    """``NAME`` or ``NAME:key=value,key=value`` -> Target; ``base`` is the shared request.

    Keys are the settings flags without dashes in front (:data:`SETTING_KEYS`:
    ``threads``, ``warmup``, ``min-runs``, ``opt-level``, ``provider``,
    ``runtime``, ``fp16``...), overriding ``base`` for this target (a
    repeated key such as ``provider`` replaces the shared list), plus
    ``label`` (the objective's qualifier) and ``precision`` (the precisions
    this target's gene may take, ``|``-separated: ``int8|fp32``; no benchmark
    setting). Raises SearchConfigError.
    """
    name, _, rest = text.strip().partition(":")
    if not name:
        raise SearchConfigError(f"target {text!r}: expected NAME or NAME:key=value,...")
    pairs: list[tuple[str, str]] = []
    label = None
    precisions: tuple[str, ...] | None = None
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not sep:
            raise SearchConfigError(f"target {text!r}: {item!r} is not key=value")
        if key == "label":
            label = raw.strip()
        elif key == "precision":
            precisions = canonical_precisions(raw, f"target {text!r}: ")
        elif key not in SETTING_KEYS:
            raise SearchConfigError(
                f"target {text!r}: unknown setting {key!r}; known: label, precision, "
                f"{', '.join(SETTING_KEYS)}"
            )
        else:
            pairs.append((key, raw))
    request = agent_pb2.BenchmarkSettings()
    if base is not None:
        request.CopyFrom(base)
    try:
        override = settings_from_pairs(pairs)
    except ValueError as exc:
        raise SearchConfigError(f"target {text!r}: {exc}") from exc
    for key, _ in pairs:  # the target's value replaces the shared one, lists and false included
        request.ClearField(setting_for_key(key).name)
    request.MergeFrom(override)
    return Target.of_kind(name, kind, _settings_dict(request), label, precisions)


@dataclass(frozen=True)
class HybridOptions:
    """How hybrid mode decides what to measure.

    A candidate is measured when, with every predicted value moved ``z``
    uncertainties in its favour, no measured trial constraint-dominates it
    (it could enter the Pareto front, or could be feasible near a bound).
    Uncertainties come from the predictor's leave-one-out errors, never below
    ``min_margin`` (relative, for latency: measurement noise). Until
    ``warmup`` candidates are measured, every candidate is measured (the
    surrogate has nothing to learn from yet); with a LUT, ``lut_warmup``.
    """

    z: float = 1.0
    min_margin: float = 0.03
    warmup: int = 10
    lut_warmup: int = 5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.z) and self.z >= 0):
            raise SearchConfigError(f"hybrid z={self.z!r}: expected a number >= 0")
        if not (math.isfinite(self.min_margin) and 0 <= self.min_margin < 1):
            raise SearchConfigError(f"hybrid min_margin={self.min_margin!r}: expected 0 <= m < 1")
        if self.warmup < 1 or self.lut_warmup < 0:
            raise SearchConfigError(
                f"hybrid warmup={self.warmup}, lut_warmup={self.lut_warmup}: expected >= 1 and >= 0"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"z": self.z, "min_margin": self.min_margin, "warmup": self.warmup,
                "lut_warmup": self.lut_warmup}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridOptions:
        return cls(**{k: data[k] for k in ("z", "min_margin", "warmup", "lut_warmup") if k in data})


def strategy_from_spec(spec: Mapping[str, Any]) -> Strategy:
    """``{"kind": "nsga2", "population_size": 20}`` -> Strategy: the registered
    strategy of that kind, built with the other keys as keyword arguments."""
    options = {k: v for k, v in spec.items() if k != "kind"}
    kind = str(spec.get("kind"))
    cls = _strategy_class(kind)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise SearchConfigError(f"strategy {dict(spec)!r}: {exc}") from exc


def _strategy_class(kind: str) -> type[Strategy]:
    try:
        return strategy_class(kind)
    except UnknownStrategy:
        raise SearchConfigError(
            f"strategy kind {kind!r}: choose {', '.join(available_strategies())} (others "
            f"register in the entry-point group {STRATEGY_GROUP!r})"
        ) from None
    except StrategyPluginError as exc:
        raise SearchConfigError(str(exc)) from exc


def strategy_spec(kind: str, **knobs: Any) -> dict[str, Any]:
    """A strategy spec from generic knobs (``population_size``, ``sample_size``...).

    Only the knobs the strategy's constructor takes, and that are not
    ``None``, are kept: ``strategy_spec("random", population_size=20)`` is
    ``{"kind": "random"}``. SearchConfigError for an unknown kind.
    """
    accepted = inspect.signature(_strategy_class(kind)).parameters
    return {"kind": kind, **{k: v for k, v in knobs.items() if k in accepted and v is not None}}


def _check_count(name: str, value: object) -> None:
    """SearchConfigError unless ``value`` is None or a positive integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SearchConfigError(f"{name}={value!r}: expected a positive integer")


def _canonical_objective(text: str | Objective) -> str:
    objective = parse_objective(text) if isinstance(text, str) else text
    return f"{objective.name}:{'max' if objective.direction == 'maximize' else 'min'}"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (see the module docstring). Build with :meth:`build`.

    ``objectives`` are canonical ``name:min|max`` texts and always include
    one ``latency[T]`` per target; ``accuracy`` is an estimator spec (see
    :func:`fleetnas.controller.driver.make_estimator`) or ``None``;
    ``budget`` counts evaluated candidates (complete or failed), ``None``
    for no limit (then ``max_measurements`` or ``timeout_s`` must bound the
    search); ``max_measurements`` bounds the latency values taken from
    measurements (``Counters.measured``: one per measured candidate and
    target, from a device or the cost DB, so a rerun on a warm database stops
    where the first run did); ``local``
    says the targets are one throw-away loopback agent (``--local``);
    ``luts`` maps a target key to the id of the LUT its predictions use;
    ``kernel_luts`` maps a target key without a block LUT to the id of the
    stored kernel LUT its predictions use (``fleetnas lut kernels``);
    ``transfers`` maps a target key without either to the id of the stored
    transfer fit its predictions use (``fleetnas lut transfer``);
    ``precisions`` are the precisions a target's gene may take unless the
    target names its own (``("fp32",)``: no precision gene, the search of
    before genes existed); ``calibration`` is the ``.npz`` an ``int8``
    variant is calibrated on (``None``: random data, with a warning);
    ``executor`` says where accuracy estimates run (``None``: inline, in the
    driver; see :mod:`._remote`).
    """

    space: str
    space_config: Mapping[str, Any]
    targets: tuple[Target, ...]
    objectives: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    accuracy: str | None = "naswot"
    accuracy_cost: str = "auto"
    strategy: Mapping[str, Any] = field(
        default_factory=lambda: {"kind": "nsga2", "population_size": 20}
    )
    mode: str = "measured"
    budget: int | None = 100
    seed: int = 0
    batch_size: int | None = None
    hybrid: HybridOptions = field(default_factory=HybridOptions)
    local: bool = False
    luts: Mapping[str, int] = field(default_factory=dict)
    transfers: Mapping[str, str] = field(default_factory=dict)
    kernel_luts: Mapping[str, str] = field(default_factory=dict)
    max_measurements: int | None = None
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    calibration: str | None = None
    executor: ExecutorOptions | None = None

    @classmethod
    def build(
        cls,
        *,
        space: str,
        targets: Sequence[Target],
        space_config: Mapping[str, Any] | None = None,
        objectives: Iterable[str | Objective] = ("accuracy",),
        constraints: Iterable[str] = (),
        accuracy: str | None = "naswot",
        accuracy_cost: str = "auto",
        strategy: Mapping[str, Any] | None = None,
        mode: str = "measured",
        budget: int | None = 100,
        seed: int = 0,
        batch_size: int | None = None,
        hybrid: HybridOptions | None = None,
        local: bool = False,
        computed: Iterable[str] = (),
        max_measurements: int | None = None,
        precisions: Sequence[str] | str = DEFAULT_PRECISIONS,
        calibration: str | None = None,
        executor: ExecutorOptions | None = None,
    ) -> SearchConfig:
        """A validated config; a ``latency[T]`` objective is added for each target not named.

        ``computed`` names values the caller will compute with callables
        (``SearchDriver(callables=...)``), which validation then accepts.
        """
        try:
            texts = [_canonical_objective(o) for o in objectives]
            constraint_texts = tuple(parse_constraint(c).text for c in constraints)
        except ValueError as exc:
            raise SearchConfigError(str(exc)) from exc
        names = [t.split(":")[0] for t in texts]
        for target in targets:
            if target.objective not in names:
                texts.append(f"{target.objective}:min")
                names.append(target.objective)
        config = cls(
            space=space,
            space_config=dict(space_config or {}),
            targets=tuple(targets),
            objectives=tuple(texts),
            constraints=constraint_texts,
            accuracy=accuracy,
            accuracy_cost=accuracy_cost,
            strategy=dict(strategy or {"kind": "nsga2", "population_size": 20}),
            mode=mode,
            budget=budget,
            seed=seed,
            batch_size=batch_size,
            hybrid=hybrid or HybridOptions(),
            local=local,
            max_measurements=max_measurements,
            precisions=canonical_precisions(precisions, "--precision: "),
            calibration=calibration,
            executor=executor,
        )
        config.validate(computed)
        return config

    # -- checks --------------------------------------------------------------------------

    def validate(self, extra_names: Iterable[str] = ()) -> None:
        """Raise SearchConfigError unless every objective and constraint can be computed.

        ``extra_names`` are values the caller computes itself (callables).
        """
        source = latency_source_class(self.mode)
        if self.accuracy_cost not in ACCURACY_COSTS:
            raise SearchConfigError(
                f"accuracy_cost {self.accuracy_cost!r}: choose one of {', '.join(ACCURACY_COSTS)}"
            )
        _check_count("budget", self.budget)
        _check_count("max_measurements", self.max_measurements)
        if self.budget is None and self.max_measurements is None:
            raise SearchConfigError("no budget: give a candidate budget (--budget N) or a "
                                    "measurement budget (--max-measurements N)")
        if self.max_measurements is not None and not source.measures:
            raise SearchConfigError(f"max_measurements: mode {self.mode} measures nothing")
        if self.batch_size is not None and self.batch_size < 1:
            raise SearchConfigError(f"batch_size={self.batch_size!r}: expected a positive integer")
        if self.accuracy is not None:
            check_accuracy_spec(self.accuracy)
        if not self.targets and source.needs_targets:
            raise SearchConfigError(f"mode {self.mode}: needs at least one --device or --class")
        keys = [t.key for t in self.targets]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise SearchConfigError(
                f"targets {duplicated} appear twice; give each its own label, e.g. "
                f"--device {duplicated[0]}:threads=2,label={duplicated[0]}-2t"
            )
        objective_names = [o.name for o in self.objective_list()]
        if len(set(objective_names)) != len(objective_names):
            raise SearchConfigError(f"objectives {objective_names}: names must be unique")
        extra = set(extra_names)
        for name in [*objective_names, *(parse_constraint(c).name for c in self.constraints)]:
            self._check_computable(name, keys, extra, source)
        strategy_from_spec(self.strategy)
        self._check_precisions(extra)

    def _check_precisions(self, extra: set[str]) -> None:
        """Precision genes are measured only: the search predicts with one LUT per target,
        its fp32 one (per-precision LUTs exist, ``fleetnas lut build --precision``, but the
        search's LUT predictors do not use them yet); and a constraint on an accuracy the
        estimator cannot see below fp32 could not be checked."""
        canonical_precisions(self.precisions, "precisions: ")
        genes = self.precision_genes()
        if genes and self.mode != "measured":
            key, allowed = next((k, v) for k, v in genes.items() if v != DEFAULT_PRECISIONS)
            target = next(t for t in self.targets if t.key == key)
            other = next(p for p in allowed if p not in DEFAULT_PRECISIONS)
            device = (f"DEVICE (one of class {target.name})" if target.is_class
                      else target.name)
            raise SearchConfigError(
                f"precision {'|'.join(allowed)} on {key}: --mode {self.mode} predicts latency "
                f"from one LUT per target, its fp32 LUT, so a quantized candidate would get an "
                f"fp32 figure. Per-precision LUTs can be built (`fleetnas lut build --precision "
                f"{other} --device {device}`) and checked (`fleetnas lut eval "
                f"--precision {other}`), but the search does not predict with them yet; "
                "search precisions with --mode measured"
            )
        below = any(set(v) - set(DEFAULT_PRECISIONS) for v in genes.values())
        blind = self.accuracy is not None and not sees_precision(self.accuracy)
        for text in self.constraints:
            if below and blind and "accuracy" not in extra and parse_constraint(text).name == "accuracy":
                raise SearchConfigError(
                    f"constraint {text!r}: {self.accuracy} scores the fp32 network only, so a "
                    "candidate deployed below fp32 has an unknown accuracy that no constraint "
                    "can check; use --accuracy train:DATA or supernet:DATA to compare "
                    "precisions, or drop the constraint"
                )

    def allowed_precisions(self, target: Target) -> tuple[str, ...]:
        """The precisions ``target``'s gene may take: its own, else the search's."""
        return target.precisions if target.precisions is not None else self.precisions

    def precision_genes(self) -> dict[str, tuple[str, ...]]:
        """Target key -> allowed precisions, in target order; ``{}`` when every target is
        fp32 only (then candidates carry no precision gene)."""
        genes = {t.key: self.allowed_precisions(t) for t in self.targets}
        if all(v == DEFAULT_PRECISIONS for v in genes.values()):
            return {}
        return genes

    def _check_computable(self, name: str, keys: Sequence[str], extra: set[str],
                          source: type[LatencySource]) -> None:
        if name in extra:
            return
        base, qualifier = split_name(name)
        if base == "accuracy" and qualifier is None:
            if self.accuracy is None:
                raise SearchConfigError(
                    "accuracy is an objective or constraint but no estimator is set; "
                    "pass --accuracy naswot|synflow|train:DATA|table:FILE.csv|supernet:DATA|"
                    "plugin:MODULE:FUNCTION"
                )
            return
        if (base == "latency" or base in MEASURED_ONLY) and qualifier is not None:
            if qualifier not in keys:
                raise SearchConfigError(
                    f"{name}: no target {qualifier!r} (targets: {', '.join(keys) or 'none'}); "
                    "add --device or --class"
                )
            if base in MEASURED_ONLY:
                flag, what = MEASURED_ONLY[base]
                if not getattr(source, flag):
                    modes = [m for m in BUILTIN_SOURCES if getattr(latency_source_class(m), flag)]
                    why = (" (measured only: LUTs and surrogates do not predict it, so every "
                           "candidate would be measured)" if base == "energy" else "")
                    raise SearchConfigError(
                        f"{name}: {what} is only known in --mode {' or '.join(modes)}{why}"
                    )
            return
        if name in ANALYTIC:
            return
        raise SearchConfigError(
            f"{name!r}: the driver computes accuracy, latency[TARGET], peak_memory[TARGET], "
            f"energy[TARGET], params and flops; anything else needs a callable objective "
            f"(Python API)"
        )

    def energy_targets(self) -> list[Target]:
        """The targets an ``energy[T]`` objective or constraint names (in target order)."""
        names = {o.name for o in self.objective_list()}
        names |= {parse_constraint(c).name for c in self.constraints}
        return [t for t in self.targets if f"energy[{t.key}]" in names]

    # -- derived -------------------------------------------------------------------------

    def objective_list(self) -> list[Objective]:
        """The objectives; ``accuracy`` labelled with what the estimator measures
        (:func:`accuracy_label`: ``"naswot score"`` for a proxy)."""
        out = []
        for text in self.objectives:
            objective = parse_objective(text)
            if objective.name == "accuracy" and self.accuracy is not None:
                objective = replace(objective, label=accuracy_label(self.accuracy))
            out.append(objective)
        return out

    def target(self, key: str) -> Target:
        for t in self.targets:
            if t.key == key:
                return t
        raise KeyError(key)

    def make_strategy(self) -> Strategy:
        return strategy_from_spec(self.strategy)

    def effective_batch_size(self) -> int:
        """Candidates asked per step: ``batch_size``, else the strategy's
        :meth:`~fleetnas.controller.search.Strategy.default_batch_size` (NSGA-II:
        its population; aging evolution: 5; random: 10)."""
        if self.batch_size is not None:
            return self.batch_size
        return self.make_strategy().default_batch_size()

    def with_budget(self, budget: int) -> SearchConfig:
        """The same search with another candidate budget (validated: a positive integer)."""
        _check_count("budget", budget)
        return replace(self, budget=budget)

    def with_max_measurements(self, max_measurements: int) -> SearchConfig:
        """The same search with another measurement budget (a positive integer)."""
        _check_count("max_measurements", max_measurements)
        return replace(self, max_measurements=max_measurements)

    # -- storage -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "space": self.space,
            "space_config": dict(self.space_config),
            "targets": [t.to_dict() for t in self.targets],
            "objectives": list(self.objectives),
            "constraints": list(self.constraints),
            "accuracy": self.accuracy,
            "accuracy_cost": self.accuracy_cost,
            "strategy": dict(self.strategy),
            "mode": self.mode,
            "budget": self.budget,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "hybrid": self.hybrid.to_dict(),
            "local": self.local,
            "luts": dict(self.luts),
            **({"transfers": dict(self.transfers)} if self.transfers else {}),
            **({"kernel_luts": dict(self.kernel_luts)} if self.kernel_luts else {}),
            "max_measurements": self.max_measurements,
            **({} if self.precisions == DEFAULT_PRECISIONS else
               {"precisions": list(self.precisions)}),
            **({} if self.calibration is None else {"calibration": self.calibration}),
            **({} if self.executor is None else {"executor": self.executor.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchConfig:
        if data.get("format") != CONFIG_FORMAT:
            raise SearchConfigError(f"search config format {data.get('format')!r}, expected {CONFIG_FORMAT!r}")
        return cls(
            space=data["space"],
            space_config=dict(data["space_config"]),
            targets=tuple(Target.from_dict(t) for t in data["targets"]),
            objectives=tuple(data["objectives"]),
            constraints=tuple(data["constraints"]),
            accuracy=data["accuracy"],
            accuracy_cost=data["accuracy_cost"],
            strategy=dict(data["strategy"]),
            mode=data["mode"],
            budget=None if data["budget"] is None else int(data["budget"]),
            seed=int(data["seed"]),
            batch_size=data["batch_size"],
            hybrid=HybridOptions.from_dict(data["hybrid"]),
            local=bool(data.get("local", False)),
            luts={str(k): int(v) for k, v in (data.get("luts") or {}).items()},
            transfers={str(k): str(v) for k, v in (data.get("transfers") or {}).items()},
            kernel_luts={str(k): str(v) for k, v in (data.get("kernel_luts") or {}).items()},
            max_measurements=data.get("max_measurements"),
            precisions=tuple(data.get("precisions", DEFAULT_PRECISIONS)),
            calibration=data.get("calibration"),
            executor=None if data.get("executor") is None else ExecutorOptions.from_dict(data["executor"]),
        )
