"""Accuracy estimators from their text spec, as stored with a search and typed on the CLI.

A spec is ``KIND`` or ``KIND:ARGUMENT``; the kind names an
:class:`EstimatorKind` in the registry :data:`ESTIMATOR_KINDS`:

=============================  ===================================================
spec                           estimator
=============================  ===================================================
``naswot``                     :class:`NaswotEstimator` (cheap: one forward pass)
``synflow``                    :class:`SynflowEstimator` (cheap)
``train:DATA[,epochs=N]``      :class:`ShortTrainingEstimator` on ``load_dataset(DATA)``
                               (``digits``, ``mnist5k``, ``synthetic``, a ``.npz`` or a folder);
                               expensive
``table:FILE.csv[,dataset=D]`` :class:`TableEstimator`: the accuracy a CSV gives
                               the arch (checked against the space); cheap
``supernet:DATA[,epochs=N]``   a weight-sharing supernet trained once on DATA (or
                               reused from ``supernets/`` beside the cost DB), then
                               each arch's inherited-weights validation accuracy;
                               cheap once trained
``plugin:MODULE:FUNCTION``     :class:`PluginEstimator` (cheap unless told otherwise)
=============================  ===================================================

Another package adds a kind by registering an :class:`EstimatorKind`
subclass in the entry-point group ``fleetnas.accuracy`` (see
:mod:`fleetnas.controller.registry`); it is then valid in
``--accuracy KIND:...`` and in stored searches.

Importing this module does not import torch; :func:`make_estimator` does
(an :class:`EstimatorKind` must check a spec without importing its
estimator).
"""

from __future__ import annotations

import abc
import importlib.metadata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.registry import Registry, subclass_check

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator

ACCURACY_GROUP = "fleetnas.accuracy"

_TRAIN_OPTIONS = {"epochs": int, "batch_size": int, "max_train_samples": int,
                  "max_val_samples": int, "seed": int, "lr": float}
#: ``supernet:DATA,...`` options: TrainConfig fields, then EvalConfig's (``bn_batches``...)
SUPERNET_OPTIONS = {**_TRAIN_OPTIONS, "bn_batches": int, "eval_batch_size": int}
_DATA_HINT = "DATA: digits, mnist5k, synthetic, a .npz file or an image folder"


class EstimatorKind(abc.ABC):
    """One kind of accuracy spec: checks its argument and builds the estimator.

    ``name`` is the kind (the part before the first ``:``); ``usage`` how it
    is written (for messages and ``--help``); ``expensive`` whether one
    estimate costs enough that hybrid mode predicts it too (``accuracy_cost
    auto``); ``measures`` what its value is, as people read it on tables,
    plots and exports (``"naswot score"``; ``"accuracy"`` only for an
    accuracy on held-out data; ``None``: ``"NAME score"``); :meth:`label`
    may add what the spec's argument says (the data). ``deployed``:
    its estimator is a :class:`~fleetnas.controller.accuracy.DeployableEstimator`
    whose dataset is the spec's first argument (``KIND:DATA,...``), so a search
    with precision genes scores each target's deployed model and calibrates
    int8 on DATA; otherwise the kind cannot see precision (a search gives a
    candidate deployed below fp32 an unknown accuracy). :meth:`check`
    must not import torch.
    """

    name: ClassVar[str]
    usage: ClassVar[str]
    expensive: ClassVar[bool] = False
    measures: ClassVar[str | None] = None
    deployed: ClassVar[bool] = False

    def label(self, argument: str = "") -> str:
        """What a value of this kind is: ``measures``, else ``"NAME score"`` (the argument
        unused; a kind whose value depends on it may say so)."""
        return self.measures or f"{self.name} score"

    @abc.abstractmethod
    def check(self, spec: str, argument: str) -> None:
        """Raise SearchConfigError (naming ``spec``) unless ``argument`` is valid."""

    @abc.abstractmethod
    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        """The estimator; may raise DatasetError or PluginError."""

    def task(self, spec: str, argument: str) -> tuple[str, dict[str, Any], str | None] | None:
        """How an executor builds the same estimator on a worker: ``(kind, options, data)``,
        ``kind`` one of :data:`fleetnas.controller.executor.ESTIMATOR_KINDS` and ``data``
        a ``load_dataset`` spec (or None); None (the default) when it runs inline only."""
        return None


class _NoArgument(EstimatorKind):
    def check(self, spec: str, argument: str) -> None:
        if argument:
            raise SearchConfigError(f"accuracy {spec!r}: {self.name} takes no argument")


class Naswot(_NoArgument):
    name = "naswot"
    usage = "naswot"
    measures = "naswot score"

    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        from fleetnas.controller.accuracy import NaswotEstimator

        return NaswotEstimator()

    def task(self, spec: str, argument: str) -> tuple[str, dict[str, Any], str | None]:
        return "naswot", {}, None


class Synflow(_NoArgument):
    name = "synflow"
    usage = "synflow"
    measures = "synflow score"

    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        from fleetnas.controller.accuracy import SynflowEstimator

        return SynflowEstimator()

    def task(self, spec: str, argument: str) -> tuple[str, dict[str, Any], str | None]:
        return "synflow", {}, None


class Train(EstimatorKind):
    name = "train"
    usage = "train:DATA[,epochs=N]"
    expensive = True
    measures = "accuracy"
    deployed = True

    def check(self, spec: str, argument: str) -> None:
        _options(spec, argument, self.usage, _TRAIN_OPTIONS)

    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        from fleetnas.controller.accuracy import ShortTrainingEstimator, load_dataset

        data, options = _options(spec, argument, self.usage, _TRAIN_OPTIONS)
        return ShortTrainingEstimator(load_dataset(data), **options)  # type: ignore[arg-type]

    def task(self, spec: str, argument: str) -> tuple[str, dict[str, Any], str | None]:
        data, options = _options(spec, argument, self.usage, _TRAIN_OPTIONS)
        return "short_training", dict(options), data


class Table(EstimatorKind):
    name = "table"
    usage = "table:FILE.csv[,dataset=D]"
    measures = "accuracy"

    def check(self, spec: str, argument: str) -> None:
        _table_options(spec, argument)

    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        from fleetnas.controller.accuracy import TableEstimator

        path, dataset = _table_options(spec, argument)
        return TableEstimator(path, dataset=dataset)


class Supernet(EstimatorKind):
    name = "supernet"
    usage = "supernet:DATA[,epochs=N]"
    measures = "supernet accuracy"
    deployed = True

    def label(self, argument: str = "") -> str:
        """``supernet accuracy (held-out DATA)``: top-1 on DATA's validation split, which
        the supernet never trains on (a path is named by its last part)."""
        data = argument.split(",")[0].rstrip("/")
        if not data:
            return "supernet accuracy"
        return f"supernet accuracy (held-out {data.rsplit('/', 1)[-1]})"

    def check(self, spec: str, argument: str) -> None:
        _options(spec, argument, self.usage, SUPERNET_OPTIONS)

    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        from fleetnas.controller.accuracy.supernet import StoredSupernetEstimator

        data, options = _options(spec, argument, self.usage, SUPERNET_OPTIONS)
        try:
            return StoredSupernetEstimator.from_options(data, options)
        except ValueError as exc:  # a TrainConfig / EvalConfig value out of range
            raise SearchConfigError(f"accuracy {spec!r}: {exc}") from None

    # task() stays None: on an executor the supernet's tasks need the store folder and the
    # supernet's key, which the spec alone does not give (see _remote_supernet.py)


def supernet_data(spec: str, argument: str) -> str:
    """The ``load_dataset`` spec of ``supernet:DATA[,...]`` (its argument ``argument``)."""
    return _options(spec, argument, Supernet.usage, SUPERNET_OPTIONS)[0]


class Plugin(EstimatorKind):
    name = "plugin"
    usage = "plugin:MODULE:FUNCTION"
    measures = "plugin score"

    def check(self, spec: str, argument: str) -> None:
        if argument.count(":") != 1:
            raise SearchConfigError(f"accuracy {spec!r}: expected plugin:MODULE:FUNCTION")

    def create(self, spec: str, argument: str) -> AccuracyEstimator:
        from fleetnas.controller.accuracy import PluginEstimator

        return PluginEstimator(argument)

    def task(self, spec: str, argument: str) -> tuple[str, dict[str, Any], str | None]:
        return "plugin", {"spec": argument}, None


def _options(spec: str, rest: str, usage: str, known: dict[str, type]
             ) -> tuple[str, dict[str, int | float]]:
    """``DATA,key=value,...`` -> ``(DATA, {key: number})``; SearchConfigError naming the fix."""
    data, *items = rest.split(",")
    if not data:
        raise SearchConfigError(f"accuracy {spec!r}: expected {usage} ({_DATA_HINT})")
    options: dict[str, int | float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise SearchConfigError(
                f"accuracy {spec!r}: option {item!r}; known: {', '.join(known)}"
            )
        try:
            options[key] = known[key](value)
        except ValueError:
            raise SearchConfigError(f"accuracy {spec!r}: {key}={value!r} is not a number") from None
    return data, options


def _table_options(spec: str, rest: str) -> tuple[str, str | None]:
    path, *items = rest.split(",")
    if not path:
        raise SearchConfigError(f"accuracy {spec!r}: expected table:FILE.csv[,dataset=NAME]")
    dataset = None
    for item in items:
        key, sep, value = item.partition("=")
        if key.strip() != "dataset" or not sep or not value.strip():
            raise SearchConfigError(f"accuracy {spec!r}: option {item!r}; known: dataset=NAME")
        dataset = value.strip()
    return path, dataset


class UnknownEstimatorKind(SearchConfigError, LookupError):
    """No built-in or registered accuracy estimator has this kind."""


ESTIMATOR_KINDS: Registry[type[EstimatorKind]] = Registry(
    ACCURACY_GROUP, "accuracy estimator",
    {cls.name: cls for cls in (Naswot, Synflow, Train, Table, Supernet, Plugin)},
    subclass_check(EstimatorKind, "name", "accuracy estimator", SearchConfigError),
    unknown=UnknownEstimatorKind, broken=SearchConfigError,
)  # fmt: skip


def estimator_usages(entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> list[str]:
    """How each registered kind is written, built-ins first (e.g. for ``--help``)."""
    out = []
    for name in ESTIMATOR_KINDS.names(entry_points):
        try:
            out.append(ESTIMATOR_KINDS.load(name, entry_points).usage)
        except SearchConfigError:
            out.append(name)  # a broken plugin: still named, it fails when used
    return out


def estimator_kind(spec: str) -> tuple[EstimatorKind, str]:
    """The kind ``spec`` names and its argument; SearchConfigError listing the known forms."""
    kind, _, argument = spec.partition(":")
    try:
        return ESTIMATOR_KINDS.load(kind)(), argument
    except UnknownEstimatorKind:
        raise SearchConfigError(
            f"accuracy {spec!r}: expected {', '.join(estimator_usages())} ({_DATA_HINT})"
        ) from None


def check_accuracy_spec(spec: str) -> None:
    """Raise SearchConfigError unless ``spec`` names a known kind with a valid argument."""
    kind, argument = estimator_kind(spec)
    kind.check(spec, argument)


def accuracy_label(spec: str) -> str:
    """What the ``accuracy`` value of a search with estimator ``spec`` is, for people:
    ``"naswot score"``, ``"accuracy"`` (held-out data), ``"supernet accuracy
    (held-out digits)"``...; ``"accuracy"`` for a kind
    no longer installed (a stored search still loads)."""
    try:
        kind, argument = estimator_kind(spec)
    except SearchConfigError:
        return "accuracy"
    return kind.label(argument)


def sees_precision(spec: str) -> bool:
    """Whether a search with estimator ``spec`` scores each target's deployed model
    (:attr:`EstimatorKind.deployed`); False for a kind no longer installed."""
    try:
        return estimator_kind(spec)[0].deployed
    except SearchConfigError:
        return False


def deployed_data(spec: str) -> str | None:
    """The DATA of a ``KIND:DATA,...`` spec whose kind sees precision (the data its
    deployed models are scored on, and int8 calibrated on); None for other kinds."""
    if not sees_precision(spec):
        return None
    return spec.partition(":")[2].split(",")[0] or None


def is_expensive(spec: str, cost: str = "auto") -> bool:
    """Whether estimating costs enough that hybrid mode should predict it too."""
    if cost != "auto":
        return cost == "expensive"
    return estimator_kind(spec)[0].expensive


def make_estimator(spec: str) -> AccuracyEstimator:
    """The estimator ``spec`` names (imports torch). Raises SearchConfigError,
    DatasetError (a dataset or table that cannot be read) or PluginError."""
    kind, argument = estimator_kind(spec)
    kind.check(spec, argument)
    return kind.create(spec, argument)
