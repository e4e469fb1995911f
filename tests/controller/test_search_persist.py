"""A search stored by change: the engine's small step state plus one row per candidate.

The engine side: ``step_state`` + trial records restore exactly what
``state_dict`` restores, for every strategy, whatever the tell order. The
store side: what a step writes does not grow with the search, rows are read
by name, and a search stored the old way (a whole snapshot) still resumes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    CallableMeasurer,
    CandidateRecord,
    SearchConfig,
    SearchDriver,
    SearchStore,
    Target,
    load_search,
)
from fleetnas.controller.search import (
    AgingEvolutionStrategy,
    NSGA2Strategy,
    RandomStrategy,
    SearchEngine,
    Strategy,
    trial_record,
)
from fleetnas.controller.spaces import get_space

SPACE = get_space("nb201")
OBJECTIVES = ["params", "flops"]
STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "nsga2": lambda: NSGA2Strategy(population_size=6),
    "aging": lambda: AgingEvolutionStrategy(population_size=6, sample_size=3),
    "random": RandomStrategy,
}


def _values(arch: object, salt: int) -> dict[str, float]:
    return {"params": float(SPACE.count_params(arch)), "flops": float(SPACE.count_flops(arch) + salt)}


def _drive(engine: SearchEngine, steps: int, rng: random.Random) -> None:
    """Ask a batch, tell it in a shuffled order, fail one now and then, leave some pending."""
    for step in range(steps):
        batch = engine.ask(6)
        rng.shuffle(batch)
        for i, candidate in enumerate(batch[:-1] if step == steps - 1 else batch):
            if i == 2 and step % 2:
                engine.fail(candidate.id, "cannot run")
            else:
                engine.tell(candidate.id, _values(candidate.arch, step), metadata={"s": step})


def _same_future(a: SearchEngine, b: SearchEngine) -> None:
    assert json.dumps(a.state_dict(), sort_keys=True) == json.dumps(b.state_dict(), sort_keys=True)
    for _ in range(3):
        ca, cb = a.ask(4), b.ask(4)
        assert [c.encoding for c in ca] == [c.encoding for c in cb]
        for x, y in zip(ca, cb, strict=True):
            a.tell(x.id, _values(x.arch, 9))
            b.tell(y.id, _values(y.arch, 9))
    assert json.dumps(a.state_dict(), sort_keys=True) == json.dumps(b.state_dict(), sort_keys=True)


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_step_state_plus_trial_records_restores_the_engine_exactly(kind: str) -> None:
    engine = SearchEngine(SPACE, STRATEGIES[kind](), OBJECTIVES, seed=3)
    _drive(engine, 5, random.Random(kind))
    step = json.loads(json.dumps(engine.step_state()))
    records = json.loads(json.dumps([trial_record(t) for t in engine.history()]))
    restored = SearchEngine.restore(step, SPACE, records)
    whole = SearchEngine.from_state_dict(json.loads(json.dumps(engine.state_dict())), SPACE)
    assert step["told_by_id"] is False  # shuffled tells: the order itself is kept
    _same_future(restored, engine)
    _same_future(whole, SearchEngine.restore(step, SPACE, records))


def test_the_step_state_does_not_grow_with_the_search() -> None:
    engine = SearchEngine(SPACE, NSGA2Strategy(population_size=6), OBJECTIVES, seed=0)
    sizes, whole = [], []
    for _ in range(8):
        for candidate in engine.ask(6):  # told in id order, as the driver tells
            engine.tell(candidate.id, _values(candidate.arch, 0))
        sizes.append(len(json.dumps(engine.step_state())))
        whole.append(len(json.dumps(engine.state_dict())))
    assert max(sizes) - min(sizes) < 100, sizes  # a few digits of counters, never the trials
    assert whole[-1] - whole[0] > 10_000  # what a whole snapshot per step used to write


def test_a_step_state_refuses_rows_that_do_not_fit() -> None:
    engine = SearchEngine(SPACE, RandomStrategy(), OBJECTIVES, seed=0)
    engine.ask(3)
    records = [trial_record(t) for t in engine.history()]
    with pytest.raises(ValueError, match="3 candidates, 2 were given"):
        SearchEngine.restore(engine.step_state(), SPACE, records[:2])
    with pytest.raises(ValueError, match="expected 'fleetnas.search-step/1'"):
        SearchEngine.restore(engine.state_dict(), SPACE, records)


# -- the store -----------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CostDB]:
    with CostDB(tmp_path / "cost.db") as database:
        yield database


def _config(**overrides: object) -> SearchConfig:
    options: dict[str, object] = dict(
        space="nb201", targets=[Target.device_class("pi", {"intra_op_threads": 1})],
        objectives=["accuracy"], accuracy=None, computed=["accuracy"], mode="hybrid",
        strategy={"kind": "nsga2", "population_size": 8}, budget=48, seed=2,
        constraints=["latency[pi] <= 2.5 ms"],
    )  # fmt: skip
    options.update(overrides)
    return SearchConfig.build(**options)  # type: ignore[arg-type]


def _latency(arch: object, target: Target) -> float:
    return 0.3 + SPACE.count_flops(arch) / 2e7


def _accuracy(arch: object) -> float:
    return float(SPACE.count_params(arch)) ** 0.5


def _driver(db: CostDB | None, config: SearchConfig) -> SearchDriver:
    return SearchDriver.create(config, db=db, measurer=CallableMeasurer(_latency),
                               callables={"accuracy": _accuracy})


def _stored_state_size(db: CostDB, search_id: int) -> int:
    return int(db.db.execute("SELECT length(state) FROM searches WHERE id = ?", (search_id,)).fetchone()[0])


def test_what_a_step_writes_does_not_grow_and_rows_are_read_by_name(db: CostDB) -> None:
    driver = _driver(db, _config())
    search_id = driver.search_id or 0
    sizes = []
    while driver.step():
        sizes.append(_stored_state_size(db, search_id))
    assert len(sizes) == 6 and max(sizes) - min(sizes) < 100, sizes
    rows = SearchStore(db).candidates(search_id)
    assert len(rows) == 48
    for row in rows:  # every field survives the trip through the table, by name
        assert CandidateRecord.from_row(row.to_row()) == row
    stored = load_search(SearchStore(db), search_id)
    assert json.dumps(stored.engine.state_dict(), sort_keys=True) == json.dumps(
        driver.engine.state_dict(), sort_keys=True)


def test_a_search_stored_as_a_whole_snapshot_still_resumes(db: CostDB) -> None:
    config = _config()
    whole = _driver(None, config)
    whole.run()
    old = _driver(db, config)
    old.run(max_steps=2)
    search_id = old.search_id or 0
    # What earlier versions stored: the whole engine snapshot in searches.state.
    with db.write_transaction() as conn:
        conn.execute("UPDATE searches SET state = ? WHERE id = ?",
                     (json.dumps(old.engine.state_dict()), search_id))
    assert load_search(SearchStore(db), search_id).legacy
    resumed = SearchDriver.resume(search_id, db=db, measurer=CallableMeasurer(_latency),
                                  callables={"accuracy": _accuracy})
    result = resumed.run()
    assert json.dumps(result.engine.state_dict(), sort_keys=True) == json.dumps(
        whole.engine.state_dict(), sort_keys=True)
    stored = load_search(SearchStore(db), search_id)
    assert not stored.legacy  # its first commit stored it the new way
    assert json.dumps(stored.engine.state_dict(), sort_keys=True) == json.dumps(
        whole.engine.state_dict(), sort_keys=True)
