"""Extension points through real entry points: strategies, accuracy estimators, latency sources.

A throw-away distribution (a ``.dist-info`` folder with ``entry_points.txt``
next to a plugin module) is put on ``sys.path``, exactly what ``pip
install`` leaves behind, so ``importlib.metadata`` finds its entry points the
way it finds an installed package's. The plugin registers one extension per
group; the driver, the engine's restore and the CLI must pick them up
without any change of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from fleetnas.controller.driver import (
    ESTIMATOR_KINDS,
    LATENCY_SOURCES,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    Target,
    check_accuracy_spec,
    latency_source_class,
)
from fleetnas.controller.registry import Registry
from fleetnas.controller.search import (
    STRATEGIES,
    SearchEngine,
    StrategyPluginError,
    available_strategies,
    strategy_class,
)
from fleetnas.controller.spaces import get_space

PLUGIN = '''
from fleetnas.controller.driver import EstimatorKind, LatencySource
from fleetnas.controller.driver._predict import Prediction
from fleetnas.controller.search import RandomStrategy


class EveryOther(RandomStrategy):
    """Random search with a state of its own, to check that restores find it."""

    kind = "every-other"

    def __init__(self, *, stride=2):
        self.stride = stride

    def config(self):
        return {"stride": self.stride}


class Params(EstimatorKind):
    name = "params"
    usage = "params"

    def check(self, spec, argument):
        pass

    def create(self, spec, argument):
        class Estimator:
            name = "params"
            cost = "counting"

            def estimate(self, space, arch):
                return float(space.count_params(arch))

        return Estimator()


class FlopsOracle(LatencySource):
    """Latency = 1 ms per 10 MFLOPs, never a device: a predictor that needs no data."""

    name = "flops-oracle"
    summary = "latency from FLOPs"
    measures = False

    def evaluate(self, batch):
        space = self.evaluation.engine.space
        for state in batch:
            ms = 0.1 + space.count_flops(state.candidate.arch) / 1e7
            predicted = {t.objective: Prediction(ms, ms, ms, "flops") for t in self.setup.config.targets}
            self.evaluation.tell_predicted(state, predicted)


class NotASource:
    name = "broken-source"
'''

ENTRY_POINTS = """
[fleetnas.strategies]
every-other = fleetnas_test_plugin:EveryOther

[fleetnas.accuracy]
params = fleetnas_test_plugin:Params

[fleetnas.latency_sources]
flops-oracle = fleetnas_test_plugin:FlopsOracle
broken-source = fleetnas_test_plugin:NotASource
measured = fleetnas_test_plugin:FlopsOracle
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plugin distribution 'installed' in ``tmp_path`` (on sys.path for this test)."""
    (tmp_path / "fleetnas_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "fleetnas_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fleetnas-test-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fleetnas_test_plugin", None)


def test_without_plugins_the_builtins_are_there() -> None:
    assert available_strategies(entry_points=[]) == ["nsga2", "aging", "random"]
    assert LATENCY_SOURCES.names([]) == ["measured", "lut", "hybrid"]
    assert ESTIMATOR_KINDS.names([]) == ["naswot", "synflow", "train", "table", "supernet", "plugin"]


def test_a_registered_strategy_is_used_by_spec_and_by_restore(installed_plugin: Path) -> None:
    assert available_strategies() == ["nsga2", "aging", "random", "every-other"]
    cls = strategy_class("every-other")
    space = get_space("nb201")
    engine = SearchEngine(space, cls(stride=3), ["params", "flops"], seed=1)
    for c in engine.ask(3):
        engine.tell(c.id, {"params": 1.0, "flops": float(c.id)})
    again = SearchEngine.from_state_dict(json.loads(json.dumps(engine.state_dict())), space)
    assert type(again.strategy) is cls and again.strategy.config() == {"stride": 3}
    assert [c.encoding for c in again.ask(2)] == [c.encoding for c in engine.ask(2)]


def test_a_registered_latency_source_runs_without_touching_the_driver(installed_plugin: Path) -> None:
    assert "flops-oracle" in LATENCY_SOURCES.names()
    config = SearchConfig.build(space="nb201", targets=[Target.device("x")], objectives=["accuracy"],
                                accuracy="params", mode="flops-oracle", budget=12,
                                strategy={"kind": "every-other"})
    result = SearchDriver.create(config).run()
    assert result.counters.trials == 12 and result.counters.measured == 0
    trial = result.front[0]
    assert trial.values["accuracy"] == get_space("nb201").count_params(trial.candidate.arch)
    assert trial.evaluation is not None and trial.evaluation.metadata["sources"]["latency[x]"] == "flops"


def test_builtin_names_cannot_be_shadowed_and_broken_plugins_say_so(installed_plugin: Path) -> None:
    from fleetnas.controller.driver import Measured

    assert latency_source_class("measured") is Measured
    with pytest.raises(SearchConfigError, match="not a LatencySource subclass"):
        latency_source_class("broken-source")
    with pytest.raises(SearchConfigError, match="mode 'nope': choose one of measured, lut, hybrid"):
        latency_source_class("nope")
    check_accuracy_spec("params")  # the plugin's kind
    with pytest.raises(SearchConfigError, match="expected naswot, synflow, .*, params"):
        check_accuracy_spec("nope")


def test_an_entry_point_that_does_not_import_is_a_named_error() -> None:
    broken = EntryPoint("ghost", "no_such_module_anywhere:Ghost", "fleetnas.strategies")
    with pytest.raises(StrategyPluginError, match="failed to load"):
        STRATEGIES.load("ghost", [broken])
    assert isinstance(STRATEGIES, Registry)


def test_the_cli_offers_what_is_registered(installed_plugin: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed_plugin),
                                                         os.environ.get("PYTHONPATH", "")])}
    code = "from fleetnas.controller.cli import main; main()"
    shown = subprocess.run([sys.executable, "-c", code, "search", "--help"], env={**env, "COLUMNS": "300"},
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "[nsga2|aging|random|every-other]" in shown.stdout
    assert "[measured|lut|hybrid|broken-source|flops-oracle]" in shown.stdout
    assert "plugin:MODULE:FUNCTION, params" in shown.stdout
    # The cost DB's schema (migration 3) still checks searches.mode against the built-ins:
    # a stored search of a plugin source is refused in one line that says why and what to do.
    run = subprocess.run(
        [sys.executable, "-c", code, "--db", str(tmp_path / "cost.db"), "search", "--space", "nb201",
         "--device", "x", "--mode", "flops-oracle", "--accuracy", "params", "--strategy",
         "every-other", "--budget", "6", "--quiet", "--no-plot"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "mode 'flops-oracle': this cost database stores searches of the modes" in run.stderr
    assert "Traceback" not in run.stderr
