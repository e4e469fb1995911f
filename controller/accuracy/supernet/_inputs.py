"""A dataset prepared for a supernet: standardised once, fitted to each subnet's input per batch.

Images are standardised per channel with the (capped) training split's
statistics, then fitted to a subnet's ``(C, H, W)`` input batch by batch with
:func:`~fleetnas.controller.accuracy.adapt_images` (channel repeat or mean,
bilinear resize): mbv3 subnets differ in resolution, and a whole split
resized to 224 pixels would not fit in memory. Both steps are linear per
channel, so standardising first is the same as standardising the resized
images up to the resize's rounding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch

from fleetnas.controller.accuracy._data import Dataset, adapt_images

Shape = tuple[int, int, int]


def dataset_hash(dataset: Dataset) -> str:
    """sha256 of the dataset's arrays (shapes, dtypes, bytes) and class count.

    The name is left out: the same images under another name train the same
    supernet.
    """
    digest = hashlib.sha256()
    digest.update(f"classes={dataset.num_classes};".encode())
    for key in ("x_train", "y_train", "x_val", "y_val"):
        array = np.ascontiguousarray(getattr(dataset, key))
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class PreparedData:
    """Standardised train/validation images of ``dataset`` (see the module docstring).

    ``max_train_samples`` keeps the first training samples of a permutation
    seeded by ``seed`` (sorted back into dataset order).
    """

    def __init__(
        self, dataset: Dataset, *, max_train_samples: int | None = None, seed: int = 0
    ) -> None:
        keep = np.arange(len(dataset.y_train))
        if max_train_samples is not None and max_train_samples < len(keep):
            keep = np.sort(np.random.default_rng(seed).permutation(len(keep))[:max_train_samples])
        x_train = dataset.x_train[keep]
        mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
        std = np.maximum(x_train.std(axis=(0, 2, 3), keepdims=True), 1e-6)
        self.x_train = ((x_train - mean) / std).astype(np.float32)
        self.y_train = torch.from_numpy(dataset.y_train[keep])
        self.x_val = ((dataset.x_val - mean) / std).astype(np.float32)
        self.y_val = torch.from_numpy(dataset.y_val)
        self.num_classes = dataset.num_classes

    @property
    def train_size(self) -> int:
        return len(self.y_train)

    def train_inputs(self, index: torch.Tensor, shape: Shape) -> torch.Tensor:
        """The training images at ``index``, fitted to ``shape``."""
        return torch.from_numpy(adapt_images(self.x_train[index.numpy()], shape))

    def calibration_batches(
        self, shape: Shape, *, batches: int, batch_size: int, seed: int
    ) -> list[torch.Tensor]:
        """``batches`` training batches (a permutation seeded by ``seed``) fitted to ``shape``.

        Fewer when the training split runs out; never a batch of one image
        (BatchNorm cannot take batch statistics of a single sample).
        """
        order = torch.from_numpy(np.random.default_rng(seed).permutation(self.train_size))
        out = []
        for b in range(batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            if len(index) < 2:
                break
            out.append(self.train_inputs(index, shape))
        return out

    def val_batches(
        self, shape: Shape, *, batch_size: int, limit: int | None = None, seed: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The validation split in batches, fitted to ``shape``.

        With ``limit``, the first ``limit`` samples of a permutation seeded by ``seed``.
        """
        index = np.arange(len(self.y_val))
        if limit is not None and limit < len(index):
            index = np.sort(np.random.default_rng(seed).permutation(len(index))[:limit])
        for start in range(0, len(index), batch_size):
            chosen = index[start : start + batch_size]
            x = torch.from_numpy(adapt_images(self.x_val[chosen], shape))
            yield x, self.y_val[torch.from_numpy(chosen)]
