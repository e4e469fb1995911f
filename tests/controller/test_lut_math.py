"""LUT pieces that need no device: calibration fit, accuracy figures, the LUT tables,
settings matching, the predictor's errors, and the file format's validation.

Real SQLite files throughout; LUT entries are written through ``LutStore`` with
settings resolved by the agent's own resolver.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetnas.agent.settings import resolve_settings
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB, settings_hash
from fleetnas.controller.costdb._settings_hash import settings_to_dict
from fleetnas.controller.lut import (
    AmbiguousLut,
    Calibration,
    CalibrationError,
    LatencyPredictor,
    LutEntry,
    LutFormatError,
    LutMismatch,
    LutNotFound,
    LutStore,
    MissingBlock,
    accuracy,
    export_lut,
    fit_calibration,
    import_lut,
    kendall_tau_b,
    read_lut_file,
    robust_latency,
    sample_archs,
    sample_cv,
    settings_mismatches,
)
from fleetnas.controller.spaces import get_space

SPACE = get_space("nb201", {"channels": 4, "cells_per_stage": 1})


def _resolved(**request: object) -> agent_pb2.BenchmarkSettings:
    return resolve_settings(
        agent_pb2.BenchmarkSettings(**request),  # type: ignore[arg-type]
        max_timeout_s=60.0, memory_cap_bytes=1 << 30,
        available_providers=["CPUExecutionProvider"],
    )  # fmt: skip


def _fake_lut(db: CostDB, *, device: str = "dev", threads: int = 1, skip: int = 0):
    """A LUT of SPACE whose block i costs (i + 1) / 10 ms; the first ``skip`` blocks left out."""
    resolved = _resolved(intra_op_threads=threads)
    store = LutStore(db)
    blocks = sorted(b.key for b in SPACE.all_blocks())
    info = store.ensure(
        space=SPACE.identity(), space_name=SPACE.name, space_config=SPACE.config(),
        space_version=SPACE.version, device=device, settings_hash=settings_hash(resolved),
        settings=settings_to_dict(resolved), blocks_total=len(blocks),
    )  # fmt: skip
    entries = [
        LutEntry(key, f"{i:064x}", (i + 1) / 10, None)
        for i, key in enumerate(blocks) if i >= skip
    ]
    store.put_entries(info.id, entries, origin_space=SPACE.name)
    if not skip:
        store.set_status(info.id, "complete")
    return store.get(info.id)


# -- calibration --------------------------------------------------------------------------


def test_calibration_recovers_an_exact_line() -> None:
    sums = [1.0, 2.0, 3.5, 5.0, 8.0, 13.0]
    measured = [0.9 * s + 0.3 for s in sums]
    fit = fit_calibration(sums, measured, [f"a{i}" for i in range(6)], fitted_at=1.0)
    assert fit.a == pytest.approx(0.9, rel=1e-12)
    assert fit.b == pytest.approx(0.3, abs=1e-12)
    assert fit.fit_rmspe == pytest.approx(0.0, abs=1e-9)
    assert fit.n == 6 and fit.archs[0] == "a0"
    assert fit.apply(10.0) == pytest.approx(9.3)
    assert Calibration.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


def test_calibration_minimises_relative_error_under_noise() -> None:
    rng = random.Random(1)
    sums = [rng.uniform(5, 50) for _ in range(40)]
    measured = [(1.1 * s + 2.0) * (1 + rng.uniform(-0.03, 0.03)) for s in sums]
    fit = fit_calibration(sums, measured)
    assert fit.a == pytest.approx(1.1, rel=0.05)
    assert fit.fit_rmspe < 3.0
    # Least squares on relative residuals: nudging the line never lowers the RMSPE.
    def rmspe(a: float, b: float) -> float:
        return math.sqrt(sum(((a * s + b) / m - 1) ** 2 for s, m in zip(sums, measured,
                                                                          strict=True)) / 40)
    best = rmspe(fit.a, fit.b)
    for da, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-2), (0, -1e-2)):
        assert rmspe(fit.a + da, fit.b + db) > best


def test_calibration_reports_its_leave_one_out_interval() -> None:
    rng = random.Random(2)
    sums = [rng.uniform(5, 50) for _ in range(12)]
    measured = [(1.1 * s + 2.0) * (1 + rng.uniform(-0.02, 0.02)) for s in sums]
    fit = fit_calibration(sums, measured, [f"a{i}" for i in range(12)])
    assert fit.a_interval is not None and fit.b_interval is not None
    assert fit.a_interval[0] < fit.a < fit.a_interval[1]
    assert fit.b_interval[0] < fit.b < fit.b_interval[1]
    assert fit.a_interval[0] > 1.0 and fit.a_interval[1] < 1.2  # narrow: the set agrees
    # Predicting each arch from the others is never better than fitting it too.
    assert fit.fit_rmspe < fit.loo_rmspe < 3.0
    assert fit.disagreeing == () and fit.warnings == ()
    assert Calibration.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


def test_a_calibration_set_that_disagrees_with_itself_is_named() -> None:
    sums = [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0]
    measured = [1.1 * s + 2.0 for s in sums]
    measured[3] *= 1.5  # one arch measured under a disturbance
    fit = fit_calibration(sums, measured, [f"a{i}" for i in range(7)])
    assert "a3" in fit.disagreeing and fit.disagreeing[0] == "a3"
    assert fit.a_interval is not None and fit.a_interval[1] - fit.a_interval[0] > 0.05
    (warning,) = fit.warnings
    assert "a3" in warning and "disagrees" in warning and "re-measure" in warning
    # The same set without the disturbance agrees with itself.
    clean = fit_calibration(sums, [1.1 * s + 2.0 for s in sums])
    assert clean.warnings == () and clean.loo_rmspe == pytest.approx(0.0, abs=1e-9)


def test_a_stored_calibration_without_the_interval_still_reads() -> None:
    old = {"a": 1.1, "b": 0.5, "n": 5, "archs": [], "fit_rmspe": 2.0, "fitted_at": 1.0}
    calibration = Calibration.from_dict(old)
    assert calibration.a_interval is None and math.isnan(calibration.loo_rmspe)
    assert calibration.warnings == ()
    with pytest.raises(CalibrationError, match="bad calibration"):
        Calibration.from_dict({**old, "a_interval": [1.0]})


@pytest.mark.parametrize(
    ("sums", "measured", "needle"),
    [
        ([1, 2, 3, 4], [1, 2, 3, 4], "at least 5"),
        ([2, 2, 2, 2, 2], [1, 2, 3, 4, 5], "degenerate"),
        ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], "not positive"),
        ([1, 2, 3, 4, -5], [1, 2, 3, 4, 5], "finite and > 0"),
        ([1, 2, 3, 4, 5], [1, 2, 3, 4], "one per arch"),
    ],
)
def test_calibration_refuses_unusable_data(sums: list[float], measured: list[float],
                                           needle: str) -> None:
    with pytest.raises(CalibrationError, match=needle):
        fit_calibration(sums, measured)


# -- robust statistics of raw samples --------------------------------------------------------


def test_robust_statistics_of_raw_samples() -> None:
    from fleetnas.agent.stats import latency_stats

    # 18 quiet runs around 2 ms and two disturbed ones: one-sided noise.
    samples = [2.0 + 0.01 * (i % 5) for i in range(18)] + [9.0, 30.0]
    assert robust_latency(samples) == latency_stats(samples).median_ms  # the agent's median
    assert robust_latency(samples, "min") == 2.0
    trimmed = robust_latency(samples, "trimmed_mean")  # drops 2 from each end
    assert trimmed == pytest.approx(sum(sorted(samples)[2:18]) / 16)
    assert 2.0 < trimmed < 2.05 < sum(samples) / len(samples)
    assert sample_cv(samples) == pytest.approx(latency_stats(samples).cv)
    assert sample_cv([2.0] * 5) == 0.0


@pytest.mark.parametrize(
    ("samples", "statistic", "needle"),
    [
        ([], "median", "at least one sample"),
        ([1.0, math.nan], "min", "finite"),
        ([1.0], "mean", "unknown statistic 'mean'; choose one of median, min, trimmed_mean"),
    ],
)
def test_robust_statistics_refuse_bad_input(samples: list[float], statistic: str,
                                            needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        robust_latency(samples, statistic)


# -- accuracy ------------------------------------------------------------------------------


def test_accuracy_figures_on_known_errors() -> None:
    measured = [10.0, 10.0, 10.0, 10.0]
    predicted = [10.4, 9.0, 11.0, 12.0]  # +4%, -10%, +10%, +20%
    acc = accuracy(predicted, measured)
    assert acc.within_5 == 0.25
    assert acc.within_10 == 0.75
    assert acc.rmspe == pytest.approx(100 * math.sqrt((0.04**2 + 0.01 + 0.01 + 0.04) / 4))
    assert acc.mape == pytest.approx((4 + 10 + 10 + 20) / 4)
    assert acc.max_ape == pytest.approx(20.0)


def test_kendall_tau_b_hand_examples() -> None:
    assert kendall_tau_b([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau_b([1, 1], [1, 2]) is None
    # 2 concordant, 3 discordant, 1 pair tied in x: (2 - 3) / sqrt((6 - 1) * 6)
    assert kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 0]) == pytest.approx(
        (2 - 3) / math.sqrt(5 * 6)
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=25))
def test_kendall_tau_b_matches_scipy(pairs: list[tuple[int, int]]) -> None:
    stats = pytest.importorskip("scipy.stats")
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    ours = kendall_tau_b(x, y)
    theirs = stats.kendalltau(x, y).statistic
    if ours is None:
        assert math.isnan(theirs)
    else:
        assert ours == pytest.approx(theirs, abs=1e-12)


# -- settings matching ---------------------------------------------------------------------


def test_settings_request_matches_only_on_the_fields_it_sets() -> None:
    resolved = settings_to_dict(_resolved(intra_op_threads=2))
    assert settings_mismatches(agent_pb2.BenchmarkSettings(), resolved) == []
    assert settings_mismatches(agent_pb2.BenchmarkSettings(intra_op_threads=2), resolved) == []
    assert settings_mismatches(agent_pb2.BenchmarkSettings(timeout_s=5.0), resolved) == []
    (line,) = settings_mismatches(agent_pb2.BenchmarkSettings(intra_op_threads=1), resolved)
    assert "intra_op_threads" in line and "asked 1" in line and "has 2" in line
    paired = agent_pb2.BenchmarkSettings(method=agent_pb2.METHOD_PAIRED)
    assert "METHOD_PAIRED" in settings_mismatches(paired, resolved)[0]


# -- the tables ------------------------------------------------------------------------------


def test_store_selects_one_lut_and_names_the_choices(tmp_path: Path) -> None:
    with CostDB(tmp_path / "db") as db:
        store = LutStore(db)
        with pytest.raises(LutNotFound, match="fleetnas lut build --space nb201 --device dev"):
            store.select(space_name="nb201", device="dev")
        one = _fake_lut(db, threads=1)
        two = _fake_lut(db, threads=2)
        assert one.id != two.id and one.settings_hash != two.settings_hash
        with pytest.raises(AmbiguousLut, match="--settings-hash"):
            store.select(space_name="nb201", device="dev")
        assert store.select(space_name="nb201", device="dev",
                            settings_hash=two.settings_hash).id == two.id
        picked = store.select(space_name="nb201", device="dev",
                              request=agent_pb2.BenchmarkSettings(intra_op_threads=1))
        assert picked.id == one.id
        assert picked.status == "complete" and picked.entries == 16 and picked.coverage == 1.0
        # Ensuring it again keeps entries and status; deleting cascades to entries.
        again = _fake_lut(db, threads=1)
        assert again.id == one.id and again.entries == 16
        store.delete(one.id)
        assert db.db.execute("SELECT count(*) FROM lut_entries WHERE lut_id = ?",
                             [one.id]).fetchone()[0] == 0


def test_block_models_are_recorded_with_their_origin(tmp_path: Path) -> None:
    with CostDB(tmp_path / "db") as db:
        info = _fake_lut(db)
        entry = next(iter(LutStore(db).entries(info.id).values()))
        model = db.get_model(entry.model_sha256)
        assert model is not None
        assert model.space == "nb201" and model.arch == "block:" + entry.block_key


# -- the predictor ---------------------------------------------------------------------------


def test_missing_block_names_the_block_and_the_command(tmp_path: Path) -> None:
    with CostDB(tmp_path / "db") as db:
        info = _fake_lut(db, skip=1)
        missing = sorted(b.key for b in SPACE.all_blocks())[0]
        predictor = LatencyPredictor.from_lut(db, SPACE, info)
        arch = next(a for a in SPACE.archs() if missing in {b.key for b in SPACE.blocks(a)})
        with pytest.raises(MissingBlock) as caught:
            predictor.predict(arch)
        assert caught.value.block_key == missing
        assert missing in str(caught.value)
        assert "fleetnas lut build --space nb201 --device dev" in str(caught.value)
        assert predictor.missing_blocks(arch) == [missing]


def test_from_db_uses_another_configuration_that_covers_the_space(tmp_path: Path) -> None:
    with CostDB(tmp_path / "db") as db:
        info = _fake_lut(db)
        # Another configuration with the same blocks: more cells per stage repeat the
        # same block keys, so the LUT built for one cell per stage covers it.
        other = get_space("nb201", {"channels": 4, "cells_per_stage": 3})
        assert other.identity() != SPACE.identity()
        predictor = LatencyPredictor.from_db(db, other, "dev", info.settings_hash)
        assert predictor.lut is not None and predictor.lut.id == info.id
        with pytest.raises(LutNotFound, match="lut build --space nb201 --device dev"):
            LatencyPredictor.from_db(db, get_space("nb201"), "dev", info.settings_hash)


def test_arch_samples_are_deterministic_distinct_and_exclusive() -> None:
    first = sample_archs(SPACE, 30, "eval", 7)
    assert first == sample_archs(SPACE, 30, "eval", 7)
    encodings = [SPACE.encode(a) for a in first]
    assert len(set(encodings)) == 30
    calibration = sample_archs(SPACE, 10, "calibration", 7, exclude=encodings)
    assert not {SPACE.encode(a) for a in calibration} & set(encodings)


# -- the file format -------------------------------------------------------------------------


def _exported(tmp_path: Path) -> Path:
    with CostDB(tmp_path / "src.db") as db:
        info = _fake_lut(db)
        LutStore(db).set_calibration(info.id, fit_calibration([1, 2, 3, 4, 6], [2, 3, 4, 5, 7]))
        json_path, _ = export_lut(db, LutStore(db).get(info.id), out_dir=tmp_path / "profiles")
    return json_path


def _rewrite(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    doc = json.loads(path.read_text())
    edit(doc)
    out = path.with_name("edited.json")
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["entries"][0].update(latency_ms=-1), "latency_ms must be finite and > 0"),
        (lambda d: d["settings"].update(intra_op_threads=4), "does not match the settings"),
        (lambda d: d["device"].update(name="../etc"), "device name"),
        (lambda d: d.update(format_version=99), "upgrade fleetnas"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "appears twice"),
        (lambda d: d["entries"][1].update(model_sha256="xyz"), "model_sha256"),
    ],
)
def test_import_rejects_malformed_files(tmp_path: Path, edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    bad = _rewrite(_exported(tmp_path), edit)
    with pytest.raises(LutFormatError, match=needle):
        read_lut_file(bad)
    with CostDB(tmp_path / "dst.db") as db, pytest.raises(LutFormatError):
        import_lut(db, bad)
    with CostDB(tmp_path / "dst.db") as db:
        assert LutStore(db).find() == []  # nothing written


@pytest.mark.parametrize("name", ["latin1.json", "latin1.csv"])
def test_import_rejects_files_that_are_not_utf8(tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"space,device\nnb201,caf\xe9\n")
    with pytest.raises(LutFormatError, match="not UTF-8 text") as caught:
        read_lut_file(bad)
    assert str(bad) in str(caught.value)
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "dst.db"), "lut", "import", str(bad)])
    assert result.exit_code == 1 and result.exception is not None
    assert isinstance(result.exception, SystemExit)  # a click error, not a traceback
    assert "not UTF-8 text" in result.output and len(result.output.strip().splitlines()) == 1


def test_import_refuses_mismatches_unless_forced(tmp_path: Path) -> None:
    path = _exported(tmp_path)
    foreign = _rewrite(path, lambda d: d["entries"][0].update(block_key="nb201.op|c=999|hw=1|op=x"))
    with CostDB(tmp_path / "dst.db") as db:
        with pytest.raises(LutMismatch, match="not blocks of"):
            import_lut(db, foreign)
        with pytest.raises(LutMismatch, match="not mbv3"):
            import_lut(db, path, expect_space="mbv3")
        with pytest.raises(LutMismatch, match="intra_op_threads: asked 2"):
            import_lut(db, path, expect_settings=agent_pb2.BenchmarkSettings(intra_op_threads=2))
        forced = import_lut(db, path, expect_settings=agent_pb2.BenchmarkSettings(
            intra_op_threads=2), force=True)
        assert forced.forced and forced.lut.entries == 16
        with pytest.raises(LutMismatch, match="--replace"):
            import_lut(db, path)
        replaced = import_lut(db, path, replace=True)
        assert replaced.replaced and len(LutStore(db).find()) == 1
