"""Calibration data: from arrays, .npz files (per input, single array, dataset layout), datasets,
random data (with its warning), and precise errors when they do not fit the model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from fleetnas.controller.accuracy import synthetic_dataset
from fleetnas.controller.compress import (
    Calibration,
    CalibrationError,
    RandomCalibrationWarning,
    TensorSpec,
    calibration_for,
    calibration_from_arrays,
    calibration_from_dataset,
    calibration_from_npz,
    random_calibration,
)
from tests import onnx_models

IMAGE = [TensorSpec("x", (1, 3, 8, 8), "float32")]
DYNAMIC = [TensorSpec("x", ("batch", 16), "float32")]


def test_arrays_split_into_batches_of_the_models_batch_dim() -> None:
    x = np.arange(5 * 3 * 8 * 8, dtype=np.float64).reshape(5, 3, 8, 8)
    calibration = calibration_from_arrays({"x": x}, IMAGE, source="mem")
    assert len(calibration.batches) == 5 and calibration.samples == 5
    assert calibration.batches[2]["x"].dtype == np.float32  # float64 cast to the input's type
    np.testing.assert_array_equal(calibration.batches[2]["x"][0], x[2].astype(np.float32))
    dynamic = calibration_from_arrays({"x": np.zeros((20, 16))}, DYNAMIC, source="m", batch_size=8)
    assert [b["x"].shape for b in dynamic.batches] == [(8, 16), (8, 16)]  # the remainder is dropped


def test_the_hash_names_the_data() -> None:
    x = np.zeros((2, 3, 8, 8), np.float32)
    a = calibration_from_arrays({"x": x}, IMAGE, source="a")
    b = calibration_from_arrays({"x": x.copy()}, IMAGE, source="b")
    x[1, 0, 0, 0] = 1.0
    c = calibration_from_arrays({"x": x}, IMAGE, source="a")
    assert a.sha256 == b.sha256 != c.sha256


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.zeros((2, 3, 8, 8))}, r"holds \['y'\]; the model's inputs are \['x'\]"),
        ({"x": np.zeros((2, 3, 8, 8), np.int32)}, "is int32; the model's input takes float32"),
        ({"x": np.zeros((0, 3, 8, 8))}, "same number \\(>= 1\\) of samples"),
        ({"x": np.zeros((2, 3, 4, 4))}, r"input 'x' is float32 \[1, 3, 4, 4\]; the model takes float32 \[1, 3, 8, 8\]"),
    ],
)  # fmt: skip
def test_arrays_that_do_not_fit_are_refused(arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        calibration_from_arrays(arrays, IMAGE, source="data.npz")


def test_npz_per_input_single_array_and_dataset_layouts(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "named.npz", x=x)
    np.savez(tmp_path / "single.npz", images=x)
    data = synthetic_dataset(shape=(3, 8, 8), per_class=4, num_classes=2)
    np.savez(tmp_path / "dataset.npz", x_train=data.x_train, y_train=data.y_train,
             x_val=data.x_val, y_val=data.y_val)  # fmt: skip
    named = calibration_from_npz(tmp_path / "named.npz", IMAGE)
    single = calibration_from_npz(tmp_path / "single.npz", IMAGE)
    assert named.sha256 == single.sha256 and named.samples == 3
    as_dataset = calibration_from_npz(tmp_path / "dataset.npz", IMAGE, samples=4)
    assert as_dataset.samples == 4 and "train split" in as_dataset.source
    two_inputs = [*IMAGE, TensorSpec("mask", (1, 8), "float32")]
    with pytest.raises(CalibrationError, match=r"holds \['images'\]; the model's inputs are \['mask', 'x'\]"):
        calibration_from_npz(tmp_path / "single.npz", two_inputs)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationError, match="broken.npz: cannot read it as .npz"):
        calibration_from_npz(tmp_path / "broken.npz", IMAGE)


def test_dataset_calibration_needs_one_image_input() -> None:
    data = synthetic_dataset(shape=(1, 8, 8), per_class=4, num_classes=2)
    with pytest.raises(CalibrationError, match=r"takes \['x', 'm'\]"):
        calibration_from_dataset(data, [*IMAGE, TensorSpec("m", (1, 2), "float32")])
    with pytest.raises(CalibrationError, match=r"has shape \['batch', 16\]; dataset images need"):
        calibration_from_dataset(data, DYNAMIC)
    with pytest.raises(CalibrationError, match="samples=0, expected a positive int"):
        calibration_from_dataset(data, IMAGE, samples=0)
    adapted = calibration_from_dataset(data, IMAGE, samples=3)  # grey 8x8 -> 3 channels
    assert adapted.batches[0]["x"].shape == (1, 3, 8, 8)


def test_random_calibration_warns_unless_told_not_to() -> None:
    with pytest.warns(RandomCalibrationWarning, match="pass calibration data"):
        noisy = random_calibration(DYNAMIC, samples=10, batch_size=4)
    assert noisy.random and [b["x"].shape for b in noisy.batches] == [(4, 16)] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = random_calibration(DYNAMIC, samples=10, batch_size=4, warn=False)
    assert quiet.sha256 == noisy.sha256  # seeded
    with pytest.raises(CalibrationError, match="random calibration makes float inputs only"):
        random_calibration([TensorSpec("ids", (1, 4), "int64")], warn=False)
    with pytest.raises(CalibrationError, match=r"dim 1 is not fixed"):
        random_calibration([TensorSpec("x", (1, "n"), "float32")], warn=False)


def test_calibration_for_takes_every_kind_of_source(tmp_path: Path) -> None:
    model = onnx_models.conv_net(3, 8, 1)
    given = calibration_from_arrays({"x": np.zeros((2, 3, 8, 8))}, IMAGE, source="given")
    assert calibration_for(model, given) is given
    with pytest.warns(RandomCalibrationWarning):
        assert calibration_for(model, None).random
    data = synthetic_dataset(shape=(1, 8, 8), per_class=4, num_classes=2)
    assert "synthetic" in calibration_for(model, data).source
    assert "synthetic" in calibration_for(model, "synthetic").source
    with pytest.raises(CalibrationError, match="missing.npz: no such file"):
        calibration_for(model, tmp_path / "missing.npz")
    with pytest.raises(CalibrationError, match="calibration 'nonsense': dataset 'nonsense': expected"):
        calibration_for(model, "nonsense")
    other = Calibration(({"x": np.zeros((1, 3, 4, 4), np.float32)},), "other")
    with pytest.raises(CalibrationError, match="from other: input 'x'"):
        calibration_for(model, other)
