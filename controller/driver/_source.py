"""The latency-source contract: where a search's latencies come from, and what is measured.

A :class:`LatencySource` is chosen by the search's ``mode`` (its registry
name) and built once per driver. Each step the driver asks it to
:meth:`~LatencySource.evaluate` the step's candidates: the source decides,
per candidate and target, whether a latency is measured (through
:meth:`Evaluation.measure <._evaluation.Evaluation.measure>`, i.e. the
scheduler and the cost DB) or predicted, and tells or fails every candidate
through the :class:`~._evaluation.Evaluation`. It may also revise trials told
in earlier steps (a prediction replaced by a measurement).

What the driver relies on:

* after :meth:`~LatencySource.evaluate` returns, no candidate of the batch is
  pending (each was told or failed);
* a source is deterministic given the engine's trials and the measurements
  it gets back: a resumed search, whose engine is rebuilt from the store,
  must make exactly the choices the original made (so a source refits any
  predictor from the engine's trials, never from state of its own that is
  not stored);
* the class attributes say what the source needs, and
  :meth:`SearchConfig.validate <._config.SearchConfig.validate>` checks them
  before a search starts.

Sources are found by name in the registry :data:`LATENCY_SOURCES`: the
built-in ``measured``, ``lut`` and ``hybrid``, and any class another
distribution registers in the entry-point group ``fleetnas.latency_sources``
(see :mod:`fleetnas.controller.registry`)::

    [project.entry-points."fleetnas.latency_sources"]
    fewshot = "mypkg.latency:FewShot"       # class FewShot(LatencySource), name = "fewshot"

A new source (a few-shot predictor, a remote runtime) is a new class there;
the driver and the CLI (``--mode fewshot``) do not change. Not thread-safe:
one driver thread.
"""

from __future__ import annotations

import abc
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.registry import Registry, subclass_check

if TYPE_CHECKING:
    from fleetnas.controller.driver._candidates import CandidateState
    from fleetnas.controller.driver._config import SearchConfig
    from fleetnas.controller.driver._evaluation import Evaluation
    from fleetnas.controller.driver._predict import ValuePredictor
    from fleetnas.controller.driver._predict_fixed import StoredPredictor
    from fleetnas.controller.lut import LatencyPredictor
    from fleetnas.controller.spaces import Arch


@dataclass(frozen=True)
class SourceSetup:
    """What a source is built from.

    ``luts`` maps target keys to LUT predictors (the caller's; copy before
    calibrating); ``features`` maps an arch to the surrogate's feature row
    (cached by the driver); ``expensive_accuracy`` says the accuracy estimate
    is costly and the source asked to defer it (:attr:`LatencySource.defers_expensive`);
    ``fixed`` maps the keys of targets without a block LUT to the stored
    predictor that serves them (a kernel LUT or a transfer fit: a source that
    uses LUTs predicts with it, :mod:`._predict_fixed`).
    """

    config: SearchConfig
    luts: Mapping[str, LatencyPredictor]
    features: Callable[[Arch], list[float]]
    expensive_accuracy: bool
    fixed: Mapping[str, StoredPredictor] = field(default_factory=dict)


class LatencySource(abc.ABC):
    """Where latencies come from (see the module docstring for the contract)."""

    #: registry name, the search's ``mode`` (stored with it)
    name: ClassVar[str]
    #: one line for ``--help`` and the docs
    summary: ClassVar[str]
    #: measures candidates: the driver must be given a Measurer
    measures: ClassVar[bool]
    #: measures every candidate on every target: the driver asks no more candidates
    #: than a measurement budget has room for
    measures_every_candidate: ClassVar[bool] = False
    #: predicts with a target's LUT where one serves it (the CLI looks them up)
    uses_luts: ClassVar[bool] = False
    #: every target must have a LUT (or a stored kernel LUT or transfer fit)
    needs_luts: ClassVar[bool] = False
    #: needs at least one target
    needs_targets: ClassVar[bool] = True
    #: peak memory (``peak_memory[T]``) is known for every candidate
    knows_peak_memory: ClassVar[bool] = False
    #: energy per inference (``energy[T]``) is known for every candidate: energy is
    #: measured only (no LUT or surrogate predicts it), so only a source that measures
    #: every candidate on every target knows it
    knows_energy: ClassVar[bool] = False
    #: an expensive accuracy estimate is predicted too and computed only where measured
    defers_expensive: ClassVar[bool] = False

    def __init__(self, setup: SourceSetup, evaluation: Evaluation) -> None:
        self.setup = setup
        self.evaluation = evaluation

    @abc.abstractmethod
    def evaluate(self, batch: list[CandidateState]) -> None:
        """Tell or fail every candidate of ``batch`` (pending, with their pre-tell values)."""

    def predictors(self) -> Mapping[str, ValuePredictor]:
        """The value predictors refitted on the search's measurements, by value name.

        Empty for a source that predicts nothing.
        """
        return {}

    def describe(self) -> dict[str, str]:
        """One line per predicted value: what predicts it and how well (for the CLI)."""
        return {name: p.describe() for name, p in self.predictors().items()}


#: the built-in sources by name, as ``module:class`` (imported when first used)
BUILTIN_SOURCES: Mapping[str, str] = {
    "measured": "fleetnas.controller.driver._sources:Measured",
    "lut": "fleetnas.controller.driver._sources:LutPredicted",
    "hybrid": "fleetnas.controller.driver._hybrid:Hybrid",
}

SOURCE_GROUP = "fleetnas.latency_sources"


class UnknownLatencySource(SearchConfigError, LookupError):
    """No built-in or registered latency source has this name."""


LATENCY_SOURCES: Registry[type[LatencySource]] = Registry(
    SOURCE_GROUP, "latency source", BUILTIN_SOURCES,
    subclass_check(LatencySource, "name", "latency source", SearchConfigError),
    unknown=UnknownLatencySource, broken=SearchConfigError,
)  # fmt: skip


def latency_source_class(
    name: str, *, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
) -> type[LatencySource]:
    """The source called ``name`` (a search's ``mode``); SearchConfigError naming the known ones."""
    try:
        return LATENCY_SOURCES.load(name, entry_points)
    except UnknownLatencySource:
        raise UnknownLatencySource(
            f"mode {name!r}: choose one of {', '.join(LATENCY_SOURCES.names(entry_points))} "
            f"(others register in the entry-point group {SOURCE_GROUP!r})"
        ) from None
