"""Unknown objective values (issue 12, item 3): ranked as the worst, never as equal.

A precision-blind accuracy of an int8 candidate is told as unknown. These
tests pin what that means for the front, the strategies, the hypervolume
and a save/restore, on the toy space with hand-made values.
"""

from __future__ import annotations

import json
import math

import pytest

from fleetnas.controller.search import (
    AgingEvolutionStrategy,
    NSGA2Strategy,
    Objective,
    ScalarFitness,
    SearchEngine,
    crowding_distance,
)
from tests.controller.test_search_toyspace import ToySpace

OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency[d]")]
REASON = "the estimator scores the fp32 network only; deployed as d=int8"


def _engine(n: int, strategy: object = None, constraints: tuple[str, ...] = ()) -> SearchEngine:
    engine = SearchEngine(ToySpace(), strategy or NSGA2Strategy(population_size=4), OBJECTIVES,
                          constraints=list(constraints), seed=0)
    engine.ask(n)
    return engine


def test_an_unknown_accuracy_ranks_worst_so_it_is_on_the_front_only_for_its_latency() -> None:
    engine = _engine(4)
    engine.tell(0, {"accuracy": 0.5, "latency[d]": 10.0})  # fp32, known
    engine.tell(1, {"latency[d]": 10.0}, unknown={"accuracy": REASON})  # as fast: dominated
    engine.tell(2, {"latency[d]": 5.0}, unknown={"accuracy": REASON})  # fastest: on the front
    engine.tell(3, {"latency[d]": 20.0}, unknown={"accuracy": REASON})  # slower: dominated
    # were an unknown accuracy taken as equal to the fp32 score, 1 would tie 0 and stay on the front
    assert [t.id for t in engine.pareto_front()] == [0, 2]
    trial = engine.trial(2)
    assert trial.evaluation is not None and trial.evaluation.unknown == {"accuracy": REASON}
    assert "accuracy" not in trial.values
    assert engine._view.point(trial) == (math.inf, 5.0)
    # it adds no volume: the front's hypervolume is the known member's alone
    assert engine.hypervolume({"accuracy": 0.0, "latency[d]": 30.0}) == pytest.approx(0.5 * 20.0)


def test_unknown_values_survive_a_save_and_restore() -> None:
    engine = _engine(2)
    engine.tell(0, {"accuracy": 0.5, "latency[d]": 10.0})
    engine.tell(1, {"latency[d]": 5.0}, unknown={"accuracy": REASON})
    state = json.loads(json.dumps(engine.state_dict()))
    again = SearchEngine.from_state_dict(state, ToySpace())
    assert again.trial(1).evaluation.unknown == {"accuracy": REASON}  # type: ignore[union-attr]
    assert [t.id for t in again.pareto_front()] == [t.id for t in engine.pareto_front()] == [0, 1]
    # a revision that tells the value makes it known
    again.revise(1, {"accuracy": 0.1})
    assert again.trial(1).evaluation.unknown == {}  # type: ignore[union-attr]


def test_strategies_rank_unknown_values_without_nan() -> None:
    points = [(-0.5, 10.0), (math.inf, 5.0), (-0.7, 12.0), (-0.6, 11.0)]
    distances = crowding_distance(points)
    assert not any(math.isnan(d) for d in distances)
    keys = ScalarFitness().keys(points, [0.0] * 4)
    assert not any(math.isnan(k[1]) for k in keys)
    # the unknown one is the worst on accuracy (1) though the fastest (0)
    assert keys[1][1] == pytest.approx(1.0)
    for strategy in (NSGA2Strategy(population_size=3),
                     AgingEvolutionStrategy(population_size=3, sample_size=2)):
        engine = _engine(3, strategy)
        engine.tell(0, {"accuracy": 0.5, "latency[d]": 10.0})
        engine.tell(1, {"latency[d]": 5.0}, unknown={"accuracy": REASON})
        engine.tell(2, {"latency[d]": 7.0}, unknown={"accuracy": REASON})
        assert len(engine.ask(2)) == 2  # breeds from a population holding unknowns


def test_an_unknown_value_is_no_constraint_input_nor_a_missing_one() -> None:
    engine = _engine(2, constraints=("accuracy >= 0.3",))
    with pytest.raises(ValueError, match="cannot be checked"):
        engine.tell(0, {"latency[d]": 5.0}, unknown={"accuracy": REASON})
    with pytest.raises(ValueError, match="lack"):
        engine.tell(1, {"latency[d]": 5.0})
    with pytest.raises(ValueError, match="told and unknown"):
        _engine(1).tell(0, {"accuracy": 0.5, "latency[d]": 5.0}, unknown={"accuracy": REASON})


def test_the_front_table_and_json_say_unknown() -> None:
    from rich.console import Console

    from fleetnas.controller.report import front_rows, front_table

    engine = _engine(2)
    engine.tell(0, {"accuracy": 0.5, "latency[d]": 10.0})
    engine.tell(1, {"latency[d]": 5.0}, unknown={"accuracy": REASON})
    rows = front_rows(engine)
    console = Console(width=200, record=True)
    console.print(front_table(rows, engine.objectives))
    lines = [line for line in console.export_text().splitlines() if "│" in line]
    cells = {line.split("│")[2].strip(): line.split("│")[3].strip() for line in lines}
    assert cells == {"0": "0.5", "1": "unknown"}  # id -> accuracy cell
    unknown = next(r for r in rows if r.candidate_id == 1)
    assert unknown.to_dict(["accuracy", "latency[d]"])["accuracy"] is None
    assert unknown.unknown == {"accuracy": REASON}


def test_a_stored_proxy_search_keeps_its_unknown_accuracies(tmp_path: object) -> None:
    """Driver, store and resume: rows hold no value for an unknown accuracy, their source
    says why, and the rebuilt engine ranks them as the one that ran."""
    from pathlib import Path

    from fleetnas.controller.costdb import CostDB
    from fleetnas.controller.driver import (
        FP32_SCORE,
        UNKNOWN,
        CallableMeasurer,
        SearchConfig,
        SearchDriver,
        SearchStore,
        Target,
        load_search,
    )
    from fleetnas.controller.spaces import PrecisionArch, get_space

    space = get_space("nb201", {"channels": 4, "cells_per_stage": 1})
    config = SearchConfig.build(space="nb201", space_config={"channels": 4, "cells_per_stage": 1},
                                targets=[Target.device("d", precisions=["int8", "fp32"])],
                                mode="measured", accuracy="naswot", budget=6,
                                strategy={"kind": "random"}, seed=5)

    def latency(arch: object, target: object) -> float:
        assert isinstance(arch, PrecisionArch)
        return space.count_flops(arch.arch) / 1e6 * (0.5 if arch.precisions[0] == "int8" else 1)

    with CostDB(Path(str(tmp_path)) / "cost.db") as db:
        driver = SearchDriver.create(config, db=db, space=space, measurer=CallableMeasurer(latency))
        result = driver.run()
        ran = {t.id: t for t in result.engine.complete()}
        assert {t.candidate.arch.precisions[0] for t in ran.values()} == {"int8", "fp32"}
        rows = SearchStore(db).candidates(result.search_id)
        stored = load_search(SearchStore(db), result.search_id)
    for row in rows:
        int8 = row.encoding.endswith("@d=int8")
        assert ("accuracy" in row.metrics) != int8 and (FP32_SCORE in row.metrics) == int8
        assert row.sources["accuracy"].startswith(UNKNOWN) == int8
        assert (ran[row.candidate_id].evaluation.unknown != {}) == int8  # type: ignore[union-attr]
    again = {t.id: t for t in stored.engine.complete()}
    assert {i: t.evaluation.unknown for i, t in again.items()} == {  # type: ignore[union-attr]
        i: t.evaluation.unknown for i, t in ran.items()}  # type: ignore[union-attr]
    assert [t.id for t in stored.engine.pareto_front()] == [t.id for t in result.engine.pareto_front()]
