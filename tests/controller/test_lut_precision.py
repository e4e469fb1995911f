"""Per-precision LUTs against a real loopback agent: an int8 LUT beside the fp32 one.

The space is the tiny NAS-Bench-201 of ``test_lut.py`` (4 channels, one cell
per stage: 16 distinct blocks); one agent and one cost DB holding an fp32 and
an int8 LUT (calibrated on 5 nets; the fp32 one is not calibrated, to keep the
module short on a loaded host) are shared by the module's tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fleetnas.controller.compress import Precision, detect_precision, make_variant
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import Target, find_lut_predictor
from fleetnas.controller.export import export_arch, export_block
from fleetnas.controller.lut import (
    LatencyPredictor,
    LutInfo,
    LutNotFound,
    LutStore,
    PrecisionConverter,
    distinct_blocks,
    export_lut,
    import_lut,
)
from tests.controller.lut_cli import SPACE, SPACE_ARGS, LutCli, invoke, lut_cli

pytestmark = [
    pytest.mark.timeout(900),  # two builds on a shared 2-core host
    # the tests make the build's variants again (on random data, as the build did)
    pytest.mark.filterwarnings("ignore::fleetnas.controller.compress.RandomCalibrationWarning"),
]

#: blocks with no op onnxruntime's quantizer converts: their int8 entry is the fp32 block
UNQUANTIZED = {b.key for b in distinct_blocks(SPACE) if "skip_connect" in b.key
               or "avg_pool" in b.key}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LutCli]:
    with lut_cli(tmp_path_factory.mktemp("lut-precision")) as b:
        for precision, calibration_n in (("fp32", "0"), ("int8", "5")):
            b.outputs[precision] = b.build("--precision", precision,
                                           "--calibration-n", calibration_n)
        yield b


def _luts(db: CostDB) -> dict[str, LutInfo]:
    return {info.precision: info for info in LutStore(db).find(space=SPACE.identity(),
                                                               device="a0")}


def test_an_int8_lut_and_the_fp32_lut_of_one_space_and_device_coexist(built: LutCli) -> None:
    with CostDB(built.db_path) as db:
        luts = _luts(db)
        assert set(luts) == {"fp32", "int8"}
        fp32, int8 = luts["fp32"], luts["int8"]
        assert fp32.id != int8.id and fp32.settings_hash == int8.settings_hash
        for info in (fp32, int8):
            assert info.status == "complete" and info.entries == 16
        assert fp32.calibration is None
        assert int8.calibration is not None and int8.calibration.n == 5
        store = LutStore(db)
        a, b = store.entries(fp32.id), store.entries(int8.id)
        # the quantized blocks are other models, the unquantizable ones the same (and the
        # same measurement: the int8 build took them from the cost DB)
        same = {k for k in a if a[k].model_sha256 == b[k].model_sha256}
        assert same == UNQUANTIZED
        assert all(a[k].measurement_uid == b[k].measurement_uid for k in same)
        # looked up by precision
        predictor = LatencyPredictor.from_db(db, SPACE, "a0", int8.settings_hash,
                                             precision="int8")
        assert predictor.lut is not None and predictor.lut.id == int8.id
        assert LatencyPredictor.from_db(db, SPACE, "a0", fp32.settings_hash).lut == fp32
        with pytest.raises(LutNotFound, match="--precision fp16"):
            LatencyPredictor.from_db(db, SPACE, "a0", fp32.settings_hash, precision="fp16")
        # a search's LUT look-up (fp32 candidates) never takes the newer int8 LUT
        found = find_lut_predictor(db, SPACE, Target.device("a0"), ["a0"])
        assert found is not None and found.lut is not None and found.lut.id == fp32.id
        found = find_lut_predictor(db, SPACE, Target.device("a0"), ["a0"], precision="int8")
        assert found is not None and found.lut is not None and found.lut.id == int8.id
    # random calibration is said once per build (blocks) and once per calibration (nets)
    assert built.outputs["int8"].stderr.count("calibrated on random normal data") == 2
    assert "of 10 blocks are calibrated on random normal data" in built.outputs["int8"].stderr
    assert "of 5 nets are calibrated on random normal data" in built.outputs["int8"].stderr
    assert f"{len(UNQUANTIZED)} blocks have no op to convert to int8" in built.outputs["int8"].stdout


def test_int8_entries_are_measurements_of_qdq_models(built: LutCli) -> None:
    with CostDB(built.db_path) as db:
        int8 = _luts(db)["int8"]
        entries = LutStore(db).entries(int8.id)
        for block in distinct_blocks(SPACE):
            entry = entries[block.key]
            measurement = db.get_measurement(entry.measurement_uid or "")
            assert measurement is not None and measurement.model_sha256 == entry.model_sha256
            assert measurement.settings_hash == int8.settings_hash
            fp32 = export_block(SPACE, block, cache_dir=built.cache_dir).onnx_bytes
            model = db.get_model(entry.model_sha256)
            assert model is not None
            if block.key in UNQUANTIZED:
                assert model.arch == "block:" + block.key
                continue
            # the variant the build measured, made again: the same bytes, a QDQ int8 graph
            variant = make_variant(fp32, "int8", cache_dir=built.cache_dir / "variants")
            assert variant.cached and variant.sha256 == entry.model_sha256
            assert detect_precision(variant.onnx_bytes).precision is Precision.INT8
            assert (model.space, model.arch) == ("nb201", f"block:{block.key}@int8")


def test_an_int8_lut_is_calibrated_on_int8_nets(built: LutCli) -> None:
    with CostDB(built.db_path) as db:
        int8 = _luts(db)["int8"]
        assert int8.calibration is not None
        for encoding in int8.calibration.archs:
            fp32 = export_arch(SPACE, SPACE.decode(encoding), cache_dir=built.cache_dir)
            variant = make_variant(fp32.onnx_bytes, "int8",
                                   cache_dir=built.cache_dir / "variants")
            assert variant.cached
            assert detect_precision(variant.onnx_bytes).precision is Precision.INT8
            (m,) = db.measurements(model_sha256=variant.sha256)
            assert m.device == "a0" and m.settings_hash == int8.settings_hash
            model = db.get_model(variant.sha256)
            assert model is not None and model.arch == f"{encoding}@int8"


def test_show_calibrate_and_eval_select_by_precision(built: LutCli) -> None:
    shown = invoke(*built.args("lut", "show", "--device", "a0"))
    assert shown.exit_code == 0 and "precision" in shown.stdout and "int8" in shown.stdout
    listed = json.loads(invoke(*built.args("lut", "show", "--precision", "int8",
                                           "--json")).stdout)
    assert [x["precision"] for x in listed] == ["int8"]
    calibrated = invoke(*built.args("lut", "calibrate", *SPACE_ARGS, *built.device_args(),
                                    "--precision", "INT8", "--calibration-n", "5", "--quiet"))
    assert calibrated.exit_code == 0, calibrated.output
    assert "int8)" in calibrated.stdout  # the label names a non-fp32 precision
    missing = invoke(*built.args("lut", "eval", *SPACE_ARGS, *built.device_args(),
                                 "--precision", "fp16", "--n", "2", "--no-plot"))
    assert missing.exit_code != 0
    assert "no fp16 LUT" in missing.output and "--precision fp16" in missing.output
    bad = invoke(*built.args("lut", "show", "--precision", "int4"))
    assert bad.exit_code == 2 and "unknown precision 'int4'" in bad.output


def test_an_int8_lut_exports_beside_the_fp32_one_and_imports_as_int8(built: LutCli,
                                                                     tmp_path: Path) -> None:
    with CostDB(built.db_path) as db:
        luts = _luts(db)
        files = {p: export_lut(db, info, out_dir=tmp_path) for p, info in luts.items()}
    assert {f.name for f in files["int8"]}.isdisjoint({f.name for f in files["fp32"]})
    for file in files["int8"]:
        with CostDB(tmp_path / f"{file.suffix[1:]}.db") as fresh:
            result = import_lut(fresh, file)
            assert result.lut.precision == "int8" and result.lut.entries == 16
            # an fp32 import of the same identity is another LUT, no clash
            fp32_file = next(f for f in files["fp32"] if f.suffix == file.suffix)
            assert import_lut(fresh, fp32_file).lut.precision == "fp32"


def test_a_calibration_set_feeds_only_the_blocks_whose_input_it_fits(tmp_path: Path) -> None:
    data = tmp_path / "cal.npz"
    np.savez(data, x=np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32))
    with CostDB(memory=True) as db:
        converter = PrecisionConverter(db, "int8", calibration_data=str(data))
        stem = next(b for b in distinct_blocks(SPACE) if b.key.startswith("nb201.stem"))
        conv = next(b for b in distinct_blocks(SPACE) if "nor_conv_3x3" in b.key)
        for block in (stem, conv):
            fp32 = export_block(SPACE, block, use_cache=False)
            ref = converter.block(SPACE, block, _ref(fp32.onnx_bytes, fp32.sha256))
            assert ref.data is not None
            assert detect_precision(ref.data).precision is Precision.INT8
    # the stem takes the image the data are; the conv an inner activation: random data
    assert (converter.models, converter.random_models) == (2, 1)
    warning = converter.warning("blocks")
    assert warning is not None and "1 of 2 blocks" in warning and "inner activations" in warning


def _ref(data: bytes, sha256: str):  # type: ignore[no-untyped-def]
    from fleetnas.controller.scheduler import ModelRef

    return ModelRef(sha256, len(data), data=data)
