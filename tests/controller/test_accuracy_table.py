"""``--accuracy table:FILE.csv``: real CSV files of NAS-Bench-201 arch strings, checked against the space."""

from __future__ import annotations

import csv
import json
import random
import zlib
from pathlib import Path

import pytest

from fleetnas.controller.accuracy import EstimatorSetup, TableError, TableEstimator
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    CallableMeasurer,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    SearchStore,
    Target,
    check_accuracy_spec,
    load_search,
    make_estimator,
)
from fleetnas.controller.spaces import get_space

SPACE = get_space("nb201")


def accuracy_of(encoding: str, dataset: str = "cifar10") -> float:
    """A fixed number in [0.5, 1) per (arch, dataset): the table's 'measured' accuracy."""
    return 0.5 + (zlib.crc32(f"{dataset}/{encoding}".encode()) % 10_000) / 20_000


def write_table(path: Path, encodings: list[str], datasets: tuple[str, ...] = ()) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        if datasets:
            writer.writerow(["arch", "dataset", "accuracy", "note"])
            writer.writerows([e, d, repr(accuracy_of(e, d)), "x"] for d in datasets for e in encodings)
        else:
            writer.writerow(["arch", "accuracy"])
            writer.writerows([e, repr(accuracy_of(e))] for e in encodings)
    return path


def sample(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return sorted({SPACE.encode(SPACE.sample(rng)) for _ in range(n)})


def test_a_table_gives_each_arch_its_row_and_reports_its_coverage(tmp_path: Path) -> None:
    encodings = sample(40)
    estimator = TableEstimator(write_table(tmp_path / "t.csv", encodings))
    (line,) = estimator.prepare(SPACE)
    assert f"{len(encodings)} of the space's {SPACE.size()} archs" in line and "t.csv" in line
    for e in encodings:
        assert estimator.estimate(SPACE, SPACE.decode(e)) == accuracy_of(e)
    missing = next(SPACE.encode(SPACE.sample(random.Random(i))) for i in range(1000)
                   if SPACE.encode(SPACE.sample(random.Random(i))) not in encodings)
    with pytest.raises(TableError, match="no row for arch") as info:
        estimator.estimate(SPACE, SPACE.decode(missing))
    assert missing in str(info.value) and str(tmp_path / "t.csv") in str(info.value)


def test_several_datasets_need_one_chosen(tmp_path: Path) -> None:
    encodings = sample(10)
    path = write_table(tmp_path / "multi.csv", encodings, ("cifar10", "cifar100"))
    with pytest.raises(TableError, match="holds datasets cifar10, cifar100"):
        TableEstimator(path)
    with pytest.raises(TableError, match="no rows for dataset 'imagenet'"):
        TableEstimator(path, dataset="imagenet")
    estimator = make_estimator(f"table:{path},dataset=cifar100")
    assert "dataset cifar100" in estimator.prepare(SPACE, EstimatorSetup())[0]
    assert estimator.estimate(SPACE, SPACE.decode(encodings[0])) == accuracy_of(encodings[0], "cifar100")
    with pytest.raises(TableError, match="no dataset column"):
        TableEstimator(write_table(tmp_path / "one.csv", encodings), dataset="cifar10")


@pytest.mark.parametrize(("text", "error"), [
    ("arch,acc\n|x|,0.5\n", "no column accuracy"),
    ("arch,accuracy\n|not_an_op~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.5\n",
     "line 2: arch .* is not an arch of space nb201"),
    (f"arch,accuracy\n{sample(1)[0]},high\n", "line 2: accuracy 'high' is not a finite number"),
    (f"arch,accuracy\n{sample(1)[0]},0.5\n{sample(1)[0]},0.6\n", "has accuracy 0.6 here and 0.5 on line 2"),
    ("arch,accuracy\n", "no rows"),
])  # fmt: skip
def test_a_bad_table_is_refused_naming_the_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=error):
        TableEstimator(path).prepare(SPACE)


def test_specs_are_checked_without_reading_the_file(tmp_path: Path) -> None:
    check_accuracy_spec("table:nowhere.csv,dataset=cifar10")
    for spec in ("table:", "table:t.csv,split=val"):
        with pytest.raises(SearchConfigError, match="table"):
            check_accuracy_spec(spec)
    with pytest.raises(TableError, match="no such file"):
        make_estimator(f"table:{tmp_path / 'nowhere.csv'}")


def test_a_search_on_a_full_table_reports_the_tables_accuracies(tmp_path: Path) -> None:
    """Every nb201 arch in the table: the front's accuracies are the table's, labelled accuracy."""
    path = write_table(tmp_path / "nb201.csv", [SPACE.encode(a) for a in SPACE.archs()])
    config = SearchConfig.build(space="nb201", targets=[Target.device("d")], mode="measured",
                                accuracy=f"table:{path}", budget=12,
                                strategy={"kind": "nsga2", "population_size": 6})
    assert config.objective_list()[0].display_name == "accuracy"
    with CostDB(tmp_path / "cost.db") as db:
        driver = SearchDriver.create(config, db=db, measurer=CallableMeasurer(
            lambda arch, target: SPACE.count_flops(arch) / 1e6))
        assert driver.estimator_notes == [f"accuracy table {path}: 15625 of the space's 15625 "
                                          "archs (100.0 %)"]
        result = driver.run()
        assert result.counters.trials == 12
        for trial in result.engine.complete():
            assert trial.values["accuracy"] == accuracy_of(trial.candidate.encoding)


def test_a_table_that_does_not_parse_stops_the_search_before_it_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "mbv3.csv"
    path.write_text("arch,accuracy\nk3e3d2,0.5\n")
    config = SearchConfig.build(space="nb201", targets=[Target.device("d")], mode="measured",
                                accuracy=f"table:{path}", budget=4)
    with CostDB(tmp_path / "cost.db") as db:
        with pytest.raises(TableError, match="line 2: arch 'k3e3d2'"):
            SearchDriver.create(config, db=db, measurer=CallableMeasurer(lambda a, t: 1.0))
        assert SearchStore(db).searches() == []


def test_a_search_stored_without_labels_loads_with_the_label_of_its_spec(tmp_path: Path) -> None:
    """A state written before objectives had labels (no "label" key) still loads, labelled."""
    config = SearchConfig.build(space="nb201", targets=[Target.device("d")], mode="measured",
                                accuracy="synflow", budget=2,
                                strategy={"kind": "random"})
    with CostDB(tmp_path / "cost.db") as db:
        driver = SearchDriver.create(config, db=db, measurer=CallableMeasurer(lambda a, t: 1.0))
        driver.run()
        store = SearchStore(db)
        assert driver.search_id is not None
        state = store.state(driver.search_id)
        assert state is not None and state["objectives"][0]["label"] == "synflow score"
        for objective in state["objectives"]:
            objective.pop("label", None)
        with db.write_transaction() as conn:
            conn.execute("UPDATE searches SET state = ? WHERE id = ?",
                         (json.dumps(state), driver.search_id))
        stored = load_search(store, driver.search_id)
        assert stored.engine.objectives[0].display_name == "synflow score"
        assert len(stored.engine.complete()) == 2
