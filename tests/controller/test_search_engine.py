"""The ask/tell engine with NSGA-II, aging evolution and random search on a toy space."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from fleetnas.controller.search import (
    AgingEvolutionStrategy,
    CallableObjective,
    CandidateStateError,
    DuplicateCandidateWarning,
    NSGA2Strategy,
    Objective,
    RandomStrategy,
    ScalarFitness,
    SearchEngine,
    SpaceMutation,
    Strategy,
    TournamentSelection,
    TrialState,
    UnknownCandidate,
    dominates,
)
from fleetnas.controller.spaces import MobileNetV3Space, NB201Space, SearchSpace
from tests.controller.test_search_toyspace import ToySpace, zdt1

OBJECTIVES = [Objective("f1"), Objective("f2")]
REFERENCE = {"f1": 1.1, "f2": 11.0}


def _strategies() -> dict[str, Callable[[], Strategy]]:
    return {
        "nsga2": lambda: NSGA2Strategy(population_size=10),
        "aging": lambda: AgingEvolutionStrategy(population_size=10, sample_size=3),
        "random": RandomStrategy,
    }


STRATEGIES = _strategies()


def _drive(engine: SearchEngine, space: ToySpace, rounds: int, batch: int) -> list[str]:
    """Ask ``batch``, tell ZDT1 values, ``rounds`` times; return the asked encodings."""
    asked: list[str] = []
    for _ in range(rounds):
        for candidate in engine.ask(batch):
            asked.append(candidate.encoding)
            engine.tell(candidate.id, zdt1(space, candidate.arch))
    return asked


def _front(engine: SearchEngine) -> list[str]:
    return [t.candidate.encoding for t in engine.pareto_front()]


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
class TestConformance:
    """Every strategy: deterministic, resumable, never repeats an arch."""

    def test_same_seed_same_search(self, kind: str) -> None:
        space = ToySpace()
        runs = []
        for _ in range(2):
            engine = SearchEngine(space, STRATEGIES[kind](), OBJECTIVES, seed=3)
            runs.append((_drive(engine, space, 6, 10), _front(engine)))
        assert runs[0] == runs[1]
        other = SearchEngine(space, STRATEGIES[kind](), OBJECTIVES, seed=4)
        assert _drive(other, space, 6, 10) != runs[0][0]

    def test_restore_continues_exactly(self, kind: str) -> None:
        space = ToySpace()
        original = SearchEngine(space, STRATEGIES[kind](), OBJECTIVES, seed=11)
        _drive(original, space, 3, 10)
        # leave some candidates pending across the snapshot
        pending = original.ask(7)
        for candidate in pending[:3]:
            original.tell(candidate.id, zdt1(space, candidate.arch))
        original.fail(pending[3].id, "device lost")
        state = json.loads(json.dumps(original.state_dict()))
        restored = SearchEngine.from_state_dict(state, space)
        assert restored.state_dict() == state
        assert [c.id for c in restored.pending()] == [c.id for c in pending[4:]]
        for engine in (original, restored):
            for candidate in pending[4:]:
                engine.tell(candidate.id, zdt1(space, candidate.arch))
        assert _drive(restored, space, 4, 10) == _drive(original, space, 4, 10)
        assert _front(restored) == _front(original)

    def test_never_repeats_an_arch(self, kind: str) -> None:
        space = ToySpace(genes=4, choices=3)  # 81 archs
        engine = SearchEngine(space, STRATEGIES[kind](), OBJECTIVES, seed=0)
        asked = _drive(engine, space, 8, 10)
        assert len(asked) == len(set(asked)) == 80


class TestNSGA2:
    def test_beats_random_search_on_zdt1_with_the_same_budget(self) -> None:
        space = ToySpace(genes=10, choices=8)
        for seed in range(3):
            volumes = {}
            for name, strategy in (
                ("nsga2", NSGA2Strategy(population_size=20)),
                ("random", RandomStrategy()),
            ):
                engine = SearchEngine(space, strategy, OBJECTIVES, seed=seed)
                engine.run(lambda c: zdt1(space, c.arch), n_trials=300, batch_size=20)
                volumes[name] = engine.hypervolume(REFERENCE)
            # The true front scores 11.68; over seeds 0-5 NSGA-II reached 11.2-11.3, random 9.3-9.9.
            assert volumes["nsga2"] > volumes["random"] + 1.0, (seed, volumes)

    def test_generations_advance_and_offspring_name_parents(self) -> None:
        space = ToySpace()
        strategy = NSGA2Strategy(population_size=10)
        engine = SearchEngine(space, strategy, OBJECTIVES, seed=0)
        _drive(engine, space, 3, 10)
        assert strategy.generation == 2  # selection runs when the next offspring is needed
        assert len(engine.population()) == 10
        assert strategy.generation == 2  # reading the population commits nothing
        assert engine.ask(1)[0].generation == 3
        children = [t.candidate for t in engine.history() if t.candidate.generation > 0]
        assert children and all(c.parents for c in children)
        assert all(p < c.id for c in children for p in c.parents)

    def test_population_is_elitist(self) -> None:
        space = ToySpace()
        engine = SearchEngine(space, NSGA2Strategy(population_size=10), OBJECTIVES, seed=2)
        _drive(engine, space, 5, 10)
        population = {t.id for t in engine.population()}
        front = {t.id for t in engine.pareto_front()}
        # The parents hold the whole front when it fits, and no dominated trial
        # when the front alone fills the population.
        assert front <= population or population <= front

    def test_reading_the_population_does_not_change_the_search(self) -> None:
        space = ToySpace()
        runs = []
        for peek in (False, True):
            engine = SearchEngine(space, NSGA2Strategy(population_size=4), OBJECTIVES, seed=1)
            asked = []
            for _ in range(6):
                # batches larger than the population: a selection committed by
                # peeking mid-batch would leave the rest to the next generation
                for candidate in engine.ask(6):
                    asked.append(candidate.encoding)
                    engine.tell(candidate.id, zdt1(space, candidate.arch))
                    if peek:
                        engine.population()
            runs.append(asked)
        assert runs[0] == runs[1]

    def test_asking_ahead_of_telling_keeps_breeding_the_same_parents(self) -> None:
        space = ToySpace()
        strategy = NSGA2Strategy(population_size=5)
        engine = SearchEngine(space, strategy, OBJECTIVES, seed=0)
        _drive(engine, space, 1, 5)
        batch = engine.ask(12)  # more than a population before any tell
        assert {c.generation for c in batch} == {1}
        for candidate in batch:
            engine.tell(candidate.id, zdt1(space, candidate.arch))
        assert {c.generation for c in engine.ask(3)} == {2}

    @pytest.mark.parametrize(
        "kwargs,bad",
        [
            ({"population_size": 1}, "population_size=1"),
            ({"population_size": 2.5}, "population_size=2.5"),
            ({"crossover_prob": 1.5}, "crossover_prob=1.5"),
            ({"mutation_prob": -0.1}, "mutation_prob=-0.1"),
            ({"mutation": "flip"}, "mutation='flip'"),
            ({"crossover": SpaceMutation()}, "crossover=<"),
            ({"selection": 2}, "selection=2"),
        ],
    )
    def test_arguments_are_validated(self, kwargs: dict[str, object], bad: str) -> None:
        with pytest.raises(ValueError, match=bad.replace("(", r"\(").replace(".", r"\.")):
            NSGA2Strategy(**kwargs)  # type: ignore[arg-type]

    def test_operator_arguments_are_validated(self) -> None:
        with pytest.raises(ValueError, match="steps=0"):
            SpaceMutation(steps=0)
        with pytest.raises(ValueError, match="size=0"):
            TournamentSelection(size=0)
        with pytest.raises(ValueError, match="weights="):
            ScalarFitness([-1.0, 1.0])


class TestAgingEvolution:
    def test_population_keeps_its_size_and_ages_out_the_oldest(self) -> None:
        space = ToySpace()
        engine = SearchEngine(
            space, AgingEvolutionStrategy(population_size=12, sample_size=4), OBJECTIVES, seed=0
        )
        for step in range(60):
            (candidate,) = engine.ask(1)
            if step < 12:
                assert candidate.parents == ()  # warm-up: uniform samples
            else:
                assert len(candidate.parents) == 1
            engine.tell(candidate.id, zdt1(space, candidate.arch))
            population = engine.population()
            assert len(population) == min(step + 1, 12)
            assert [t.id for t in population] == [t.id for t in engine.complete()[-12:]]

    def test_improves_on_its_random_warm_up(self) -> None:
        space = ToySpace(genes=10)
        engine = SearchEngine(
            space, AgingEvolutionStrategy(population_size=20, sample_size=5), OBJECTIVES, seed=1
        )
        engine.run(lambda c: zdt1(space, c.arch), n_trials=20, batch_size=1)
        warm_up = engine.hypervolume(REFERENCE)
        engine.run(lambda c: zdt1(space, c.arch), n_trials=200, batch_size=1)
        assert engine.hypervolume(REFERENCE) > warm_up + 1.0

    def test_scalar_fitness_runs_deterministically(self) -> None:
        space = ToySpace()
        make = lambda: AgingEvolutionStrategy(  # noqa: E731
            population_size=10, sample_size=3, fitness=ScalarFitness([1.0, 2.0])
        )
        a = SearchEngine(space, make(), OBJECTIVES, seed=5)
        b = SearchEngine(space, make(), OBJECTIVES, seed=5)
        assert _drive(a, space, 5, 4) == _drive(b, space, 5, 4)
        restored = SearchEngine.from_state_dict(json.loads(json.dumps(a.state_dict())), space)
        assert _drive(restored, space, 2, 4) == _drive(a, space, 2, 4)

    def test_arguments_are_validated(self) -> None:
        with pytest.raises(ValueError, match="sample_size=11"):
            AgingEvolutionStrategy(population_size=10, sample_size=11)
        with pytest.raises(ValueError, match="fitness=3"):
            AgingEvolutionStrategy(fitness=3)  # type: ignore[arg-type]


class TestConstraints:
    def test_front_is_feasible_and_infeasible_trials_are_dominated(self) -> None:
        space = ToySpace()
        engine = SearchEngine(
            space,
            NSGA2Strategy(population_size=10),
            OBJECTIVES,
            constraints=["f1 >= 0.5", "f2 <= 1.5"],
            seed=0,
        )
        _drive(engine, space, 12, 10)
        complete = engine.complete()
        infeasible = [t for t in complete if not t.evaluation.feasible]
        assert infeasible, "the constraints should cut part of the space"
        front = engine.pareto_front()
        assert front
        for trial in front:
            assert trial.evaluation.feasible
            assert trial.values["f1"] >= 0.5 and trial.values["f2"] <= 1.5
        feasible_points = [
            (t.values["f1"], t.values["f2"]) for t in complete if t.evaluation.feasible
        ]
        for trial in front:
            point = (trial.values["f1"], trial.values["f2"])
            assert not any(dominates(q, point) for q in feasible_points)
        # NSGA-II's parents: every feasible trial while they are fewer than the
        # population, then feasible ones only
        population = engine.population()
        feasible_ids = {t.id for t in complete if t.evaluation.feasible}
        in_population = {t.id for t in population if t.evaluation.feasible}
        assert len(in_population) == min(len(feasible_ids), len(population))

    def test_violations_are_reported_per_constraint(self) -> None:
        space = ToySpace()
        engine = SearchEngine(
            space, RandomStrategy(), OBJECTIVES, constraints=["f2 <= 2", "params <= 100"]
        )
        (candidate,) = engine.ask(1)
        trial = engine.tell(candidate.id, {"f1": 0.1, "f2": 3.0, "params": 150.0})
        assert trial.evaluation.violations == {"f2 <= 2": 1.0, "params <= 100": 50.0}
        assert trial.evaluation.total_violation == pytest.approx(1.0 / 2 + 50.0 / 100)
        assert not trial.evaluation.feasible

    def test_without_feasible_trials_the_front_is_the_least_violating(self) -> None:
        space = ToySpace()
        engine = SearchEngine(space, RandomStrategy(), OBJECTIVES, constraints=["f1 <= -1"])
        told = {}
        for candidate, f1 in zip(engine.ask(4), (0.5, 0.2, 0.2, 0.9), strict=True):
            told[candidate.id] = f1
            engine.tell(candidate.id, {"f1": f1, "f2": 1.0 - f1})
        assert {t.id for t in engine.pareto_front()} == {i for i, f in told.items() if f == 0.2}


class TestMultiObjective:
    @pytest.mark.parametrize("kind", ["nsga2", "aging"])
    def test_three_objectives(self, kind: str) -> None:
        space = ToySpace()

        def evaluate(arch: tuple[int, ...]) -> dict[str, float]:
            values = zdt1(space, arch)
            values["latency[pi]"] = float(sum(arch[:4]))
            return values

        objectives = [*OBJECTIVES, Objective("latency[pi]")]
        engine = SearchEngine(space, STRATEGIES[kind](), objectives, seed=0)
        engine.run(lambda c: evaluate(c.arch), n_trials=20)
        early = engine.hypervolume({**REFERENCE, "latency[pi]": 30.0})
        engine.run(lambda c: evaluate(c.arch), n_trials=150)
        front = engine.pareto_front()
        points = [tuple(t.values[o.name] for o in objectives) for t in front]
        assert not any(dominates(p, q) for p in points for q in points)
        assert engine.hypervolume({**REFERENCE, "latency[pi]": 30.0}) > early

    def test_maximised_callable_objective(self) -> None:
        space = ToySpace()
        accuracy = CallableObjective("accuracy", lambda arch: sum(arch) / 56.0, "maximize")
        params = CallableObjective("params", space.count_params)
        engine = SearchEngine(space, NSGA2Strategy(population_size=10), [accuracy, params], seed=0)
        trials = engine.run(n_trials=100)
        assert len(trials) == 100
        assert trials[0].values == {
            "accuracy": sum(trials[0].candidate.arch) / 56.0,
            "params": float(space.count_params(trials[0].candidate.arch)),
        }
        front = engine.pareto_front()
        # a trade-off: the front runs from small-and-inaccurate to big-and-accurate
        assert front[0].values["accuracy"] > front[-1].values["accuracy"]
        assert front[0].values["params"] > front[-1].values["params"]
        # restoring needs the callables back; names and directions must match
        state = json.loads(json.dumps(engine.state_dict()))
        restored = SearchEngine.from_state_dict(state, space, objectives=[accuracy, params])
        assert restored.run(n_trials=10)[-1].values == engine.run(n_trials=10)[-1].values
        with pytest.raises(ValueError, match="do not match"):
            SearchEngine.from_state_dict(state, space, objectives=[Objective("accuracy"), params])


class TestTellAndAsk:
    def _engine(self, **kwargs: object) -> SearchEngine:
        return SearchEngine(ToySpace(), RandomStrategy(), OBJECTIVES, **kwargs)  # type: ignore[arg-type]

    def test_tell_checks_values_and_state(self) -> None:
        engine = self._engine()
        a, b = engine.ask(2)
        with pytest.raises(ValueError, match=r"lack \['f2'\]"):
            engine.tell(a.id, {"f1": 1.0})
        with pytest.raises(ValueError, match="finite"):
            engine.tell(a.id, {"f1": 1.0, "f2": math.nan})
        with pytest.raises(ValueError, match="JSON"):
            engine.tell(a.id, {"f1": 1.0, "f2": 1.0}, metadata={"x": object()})
        with pytest.raises(UnknownCandidate):
            engine.tell(99, {"f1": 1.0, "f2": 1.0})
        trial = engine.tell(
            a.id, {"f1": 1.0, "f2": 2.0, "extra": 3}, metadata={"source": "measured"}
        )
        assert trial.state is TrialState.COMPLETE
        assert trial.values == {"f1": 1.0, "f2": 2.0, "extra": 3.0}
        assert trial.evaluation.metadata == {"source": "measured"}
        with pytest.raises(CandidateStateError, match="already complete"):
            engine.tell(a.id, {"f1": 1.0, "f2": 1.0})
        engine.fail(b.id, "worker crashed")
        with pytest.raises(CandidateStateError, match="already failed"):
            engine.tell(b.id, {"f1": 1.0, "f2": 1.0})
        assert engine.trial(b.id).failure == "worker crashed"
        assert [t.id for t in engine.complete()] == [a.id]

    def test_revise_replaces_a_prediction_with_a_measurement(self) -> None:
        engine = self._engine()
        a, b = engine.ask(2)
        engine.tell(a.id, {"f1": 0.5, "f2": 0.5}, metadata={"source": "predicted"})
        engine.tell(b.id, {"f1": 0.6, "f2": 0.6})
        assert [t.id for t in engine.pareto_front()] == [a.id]
        engine.revise(a.id, {"f2": 0.9}, metadata={"source": "measured"})
        assert engine.trial(a.id).values == {"f1": 0.5, "f2": 0.9}
        assert engine.trial(a.id).evaluation.metadata == {"source": "measured"}
        assert {t.id for t in engine.pareto_front()} == {a.id, b.id}
        with pytest.raises(CandidateStateError):
            engine.revise(engine.ask(1)[0].id, {"f1": 0.0})

    def test_exhausted_space_proposes_a_duplicate_and_says_so(self) -> None:
        engine = SearchEngine(
            ToySpace(genes=2, choices=2), RandomStrategy(), OBJECTIVES, max_retries=20
        )
        first = engine.ask(4)
        assert len({c.encoding for c in first}) == 4
        with pytest.warns(DuplicateCandidateWarning, match="nearly exhausted"):
            (again,) = engine.ask(1)
        assert again.duplicate_of == next(c.id for c in first if c.encoding == again.encoding)

    def test_ids_increase_in_ask_order(self) -> None:
        engine = self._engine()
        assert [c.id for c in engine.ask(3)] + [c.id for c in engine.ask(2)] == [0, 1, 2, 3, 4]

    def test_engine_arguments_are_validated(self) -> None:
        with pytest.raises(ValueError, match="at least one objective"):
            SearchEngine(ToySpace(), RandomStrategy(), [])
        with pytest.raises(ValueError, match="unique"):
            SearchEngine(ToySpace(), RandomStrategy(), ["f1", "f1"])
        with pytest.raises(ValueError, match="strategy="):
            SearchEngine(ToySpace(), "nsga2", OBJECTIVES)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="n=0"):
            self._engine().ask(0)

    def test_restore_refuses_a_mismatch(self) -> None:
        engine = SearchEngine(ToySpace(), NSGA2Strategy(population_size=4), OBJECTIVES)
        state = engine.state_dict()
        with pytest.raises(ValueError, match="does not match"):
            SearchEngine.from_state_dict(
                state, ToySpace(), strategy=NSGA2Strategy(population_size=5)
            )
        other = ToySpace()
        other.name = "other"
        with pytest.raises(ValueError, match="space 'toy'"):
            SearchEngine.from_state_dict(state, other)
        restored = SearchEngine.from_state_dict(
            state, ToySpace(), strategy=NSGA2Strategy(population_size=4)
        )
        assert restored.ask(3) == engine.ask(3)

    def test_string_objectives_and_constraints(self) -> None:
        engine = SearchEngine(
            ToySpace(),
            RandomStrategy(),
            ["accuracy", "latency[rpi4]", "latency[jetson]"],
            constraints=["latency[rpi4] <= 30 ms", "latency[jetson] <= 0.01 s"],
        )
        assert [o.direction for o in engine.objectives] == ["maximize", "minimize", "minimize"]
        (c,) = engine.ask(1)
        trial = engine.tell(c.id, {"accuracy": 0.9, "latency[rpi4]": 25.0, "latency[jetson]": 12.0})
        assert trial.evaluation.violations == {
            "latency[rpi4] <= 30 ms": 0.0,
            "latency[jetson] <= 0.01 s": 2.0,
        }


def test_random_strategy_rng_is_the_engines() -> None:
    """The engine's Random is the only source: replaying its draws reproduces the samples."""
    space = ToySpace()
    engine = SearchEngine(space, RandomStrategy(), OBJECTIVES, seed=9)
    rng = random.Random(9)
    assert [c.arch for c in engine.ask(5)] == [space.sample(rng) for _ in range(5)]


@pytest.mark.parametrize("kind", ["nsga2", "aging"])
@pytest.mark.parametrize(
    "space",
    [NB201Space(), MobileNetV3Space(resolutions=(96, 128), width_mult=0.5, num_classes=10)],
    ids=["nb201", "mbv3"],
)
def test_real_spaces(kind: str, space: SearchSpace) -> None:
    """The built-in spaces through the engine: deduped asks, constraints, exact resume."""
    objectives = [
        CallableObjective("params", space.count_params),
        CallableObjective("flops", space.count_flops),
        CallableObjective("blocks", lambda arch: -len(space.blocks(arch))),
    ]
    strategy = STRATEGIES[kind]()
    engine = SearchEngine(space, strategy, objectives, constraints=["params <= 1 M"], seed=0)
    trials = engine.run(n_trials=60, batch_size=10)
    assert len({t.candidate.encoding for t in trials}) == 60
    assert all(t.evaluation.feasible for t in engine.pareto_front())
    state = json.loads(json.dumps(engine.state_dict()))
    assert state["space"] == space.identity()
    restored = SearchEngine.from_state_dict(state, space, objectives=objectives)
    assert [c.encoding for c in restored.ask(10)] == [c.encoding for c in engine.ask(10)]
