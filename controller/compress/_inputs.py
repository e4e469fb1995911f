"""A Dataset's images as a model's inputs, preprocessed exactly as the accuracy estimators do.

The short-training estimator fits images to the network's input
(:func:`~fleetnas.controller.accuracy.adapt_images`: channels repeated or
averaged, bilinear resize) and standardises each channel with the mean and
standard deviation of the (adapted) training split. A model trained that way
must be calibrated and evaluated on inputs made the same way, so calibration
(:mod:`._calibration`) and evaluation (:mod:`._accuracy`) both take their
inputs from :class:`DatasetInputs`, never each their own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fleetnas.controller.accuracy import Dataset, DatasetError, adapt_images
from fleetnas.controller.compress._errors import EvaluationError
from fleetnas.controller.compress._graph import TensorSpec


@dataclass(frozen=True)
class DatasetInputs:
    """``dataset`` fitted to one image input ``(N, C, H, W)`` of a model.

    ``standardize`` (default True, as the estimators) subtracts the training
    split's per-channel mean and divides by its standard deviation; pass
    False for a model that expects the dataset's raw scale.
    """

    dataset: Dataset
    chw: tuple[int, int, int]
    standardize: bool = True
    _stats: tuple[np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def for_input(
        cls, dataset: Dataset, spec: TensorSpec, *, standardize: bool = True
    ) -> DatasetInputs:
        """For the image input ``spec``; EvaluationError when it is not ``(N, C, H, W)`` float."""
        dims = spec.dims
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise EvaluationError(
                f"input {spec.name!r} has shape {list(dims)}; dataset images need a fixed "
                "(N, C, H, W) input"
            )
        if spec.dtype not in ("float32", "float16"):
            raise EvaluationError(
                f"input {spec.name!r} takes {spec.dtype}; dataset images are floats"
            )
        c, h, w = (int(d) for d in dims[1:])  # type: ignore[arg-type]
        return cls(dataset, (c, h, w), standardize)

    def _adapt(self, x: np.ndarray) -> np.ndarray:
        try:
            return adapt_images(x, self.chw)
        except DatasetError as exc:
            raise EvaluationError(f"{self.dataset.name}: {exc}") from exc

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std ``(1, C, 1, 1)`` of the adapted training split."""
        if self._stats is None:
            x = self._adapt(self.dataset.x_train)
            mean = x.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
            std = np.maximum(x.std(axis=(0, 2, 3), keepdims=True, ddof=1, dtype=np.float64), 1e-6)
            object.__setattr__(self, "_stats", (mean.astype(np.float32), std.astype(np.float32)))
        assert self._stats is not None
        return self._stats

    def images(self, split: str, index: np.ndarray | None = None) -> np.ndarray:
        """Images of ``split`` (``"train"`` or ``"val"``), optionally a subset, preprocessed."""
        if split not in ("train", "val"):
            raise ValueError(f"split={split!r}, expected 'train' or 'val'")
        x = getattr(self.dataset, f"x_{split}")
        x = self._adapt(x if index is None else x[index])
        if self.standardize:
            mean, std = self.stats()
            x = (x - mean) / std
        return np.ascontiguousarray(x, dtype=np.float32)

    def labels(self, split: str, index: np.ndarray | None = None) -> np.ndarray:
        y = getattr(self.dataset, f"y_{split}")
        return y if index is None else y[index]
