"""Datasets for the estimators: .npz files, image folders, synthetic data, input adaptation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fleetnas.controller.accuracy import (
    Dataset,
    DatasetError,
    adapt_images,
    load_dataset,
    load_digits,
    load_image_folder,
    load_npz,
    synthetic_dataset,
)


def test_npz_channels_last_uint8(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (12, 6, 5, 3), dtype=np.uint8)
    x_val = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x_train, y_train=np.arange(12) % 3, x_val=x_val, y_val=np.arange(4) % 3)
    data = load_npz(path)
    assert data.name == "mine"
    assert data.image_shape == (3, 6, 5)
    assert data.num_classes == 3
    assert data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train[1, 2], x_train[1, :, :, 2] / 255.0, rtol=1e-6)
    assert load_dataset(str(path)).image_shape == (3, 6, 5)


def test_npz_grey_images_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "grey.npz"
    np.savez(
        good,
        x_train=np.zeros((4, 8, 8)),
        y_train=np.array([0, 1, 0, 1]),
        x_val=np.zeros((2, 8, 8)),
        y_val=np.array([0, 1]),
    )
    assert load_npz(good).image_shape == (1, 8, 8)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((4, 8, 8)), y_train=np.zeros(4, dtype=int))
    with pytest.raises(DatasetError, match=r"lacks arrays \['x_val', 'y_val'\]"):
        load_npz(partial)
    bad_shape = tmp_path / "bad.npz"
    np.savez(
        bad_shape,
        x_train=np.zeros((4, 5, 8, 8)),
        y_train=np.zeros(4, dtype=int),
        x_val=np.zeros((2, 5, 8, 8)),
        y_val=np.zeros(2, dtype=int),
    )
    with pytest.raises(DatasetError, match="C in 1, 3, 4"):
        load_npz(bad_shape)
    not_npz = tmp_path / "junk.npz"
    not_npz.write_text("hello")
    with pytest.raises(DatasetError, match="cannot read"):
        load_npz(not_npz)


def test_labels_must_fit_the_classes() -> None:
    x = np.zeros((3, 1, 4, 4), dtype=np.float32)
    with pytest.raises(DatasetError, match="labels span"):
        Dataset(x, np.array([0, 1, 5]), x, np.array([0, 1, 1]), num_classes=3)
    with pytest.raises(DatasetError, match="y_val has shape"):
        Dataset(x, np.array([0, 1, 2]), x, np.array([0, 1]), num_classes=3)


def test_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for cls, level in (("cat", 40), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            pixels = np.clip(rng.normal(level, 10, (10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, val_fraction=0.2, seed=0, size=(8, 8))
    assert data.image_shape == (3, 8, 8)
    assert data.num_classes == 2
    assert len(data.y_train) == 8 and sorted(data.y_val.tolist()) == [0, 1]  # stratified
    # class order = sorted folder names: cat (dark) is 0, dog (bright) is 1
    assert data.x_train[data.y_train == 0].mean() < 0.3 < data.x_train[data.y_train == 1].mean()
    again = load_image_folder(tmp_path, val_fraction=0.2, seed=0, size=(8, 8))
    np.testing.assert_array_equal(again.x_val, data.x_val)
    assert load_dataset(str(tmp_path)).image_shape == (3, 10, 12)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    with pytest.raises(DatasetError, match="at least 2 subfolders"):
        load_image_folder(tmp_path)


def test_synthetic_is_deterministic_and_balanced() -> None:
    a, b = synthetic_dataset(seed=3), synthetic_dataset(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, synthetic_dataset(seed=4).x_train)
    assert a.image_shape == (1, 8, 8) and a.num_classes == 10
    assert np.bincount(a.y_val).tolist() == [15] * 10


def test_adapt_images() -> None:
    x = np.arange(2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    up = adapt_images(x, (3, 32, 32))
    assert up.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(up[:, 0], up[:, 2])
    assert adapt_images(up, (1, 8, 8)).shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(adapt_images(x, (1, 8, 8)), x)
    with pytest.raises(DatasetError, match="3-channel images to a 4-channel"):
        adapt_images(up, (4, 8, 8))


def test_dataset_specs() -> None:
    assert load_dataset("synthetic").name == "synthetic"
    with pytest.raises(DatasetError, match="expected 'digits', 'mnist5k', 'synthetic'"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset("/nonexistent/data.npz")


def test_digits_when_scikit_learn_is_installed() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="needs scikit-learn"):
            load_digits()
        return
    digits = load_digits()
    assert digits.image_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.y_train) + len(digits.y_val) == 1797
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
