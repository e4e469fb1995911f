"""Calibration data for int8 static quantization: batches of model inputs, from where the user has them.

A :class:`Calibration` is a fixed, ordered tuple of batches (input name ->
array), so the same calibration gives the same quantized model; its
:attr:`~Calibration.sha256` names the data (part of a variant's identity).
Sources:

* a :class:`~fleetnas.controller.accuracy.Dataset` (:func:`calibration_from_dataset`):
  a seeded sample of the *training* split (validation stays held out for the
  accuracy that follows), preprocessed by :class:`DatasetInputs` exactly as
  evaluation preprocesses;
* an ``.npz`` (:func:`calibration_from_npz`): either a dataset file
  (``x_train, y_train, x_val, y_val``: as a Dataset), or one array per model
  input named like the input, or a single array for a single-input model;
  such arrays are fed as they are, split along axis 0;
* random normal data (:func:`random_calibration`), with a
  :class:`RandomCalibrationWarning` saying so: the scales then fit noise,
  not the data, and the int8 model's accuracy says nothing. Latency does not
  depend on the scales, so LUT blocks (whose inputs are inner activations)
  may pass ``warn=False``.

Batches follow the model's batch dimension when it is fixed (an export at
batch 1 gets batches of 1), else ``batch_size``.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np

from fleetnas.controller.accuracy import Dataset, DatasetError, load_dataset, load_npz
from fleetnas.controller.compress._errors import (
    CalibrationError,
    EvaluationError,
    InvalidModel,
    RandomCalibrationWarning,
)
from fleetnas.controller.compress._graph import TensorSpec, input_specs, load_model
from fleetnas.controller.compress._inputs import DatasetInputs

DEFAULT_SAMPLES = 64
DEFAULT_RANDOM_SAMPLES = 16
DEFAULT_BATCH_SIZE = 8
_DATASET_KEYS = frozenset({"x_train", "y_train", "x_val", "y_val"})


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration batches (input name -> array), where they came from, and whether they are random.

    The factories below copy the data in and make the arrays read-only, so the
    hash stays true to the batches.
    """

    batches: tuple[Mapping[str, np.ndarray], ...]
    source: str
    random: bool = False

    @property
    def samples(self) -> int:
        """Samples over all batches (the first input's leading dims)."""
        return sum(int(next(iter(b.values())).shape[0]) for b in self.batches if b)

    @property
    def sha256(self) -> str:
        """Hash of every batch's names, dtypes, shapes and bytes, in order."""
        digest = hashlib.sha256()
        for batch in self.batches:
            for name in sorted(batch):
                array = np.ascontiguousarray(batch[name])
                digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
                digest.update(array.tobytes())
        return digest.hexdigest()

    def check(self, inputs: Sequence[TensorSpec]) -> None:
        """CalibrationError unless every batch feeds exactly ``inputs`` with fitting shapes and dtypes."""
        if not self.batches:
            raise CalibrationError(f"calibration from {self.source} has no batches")
        wanted = {spec.name: spec for spec in inputs}
        for i, batch in enumerate(self.batches):
            if set(batch) != set(wanted):
                raise CalibrationError(
                    f"calibration batch {i} from {self.source} feeds {sorted(batch)}; "
                    f"the model's inputs are {sorted(wanted)}"
                )
            for name, array in batch.items():
                spec = wanted[name]
                if str(array.dtype) != spec.dtype or not _fits(array.shape, spec.dims):
                    raise CalibrationError(
                        f"calibration batch {i} from {self.source}: input {name!r} is "
                        f"{array.dtype} {list(array.shape)}; the model takes {spec.dtype} "
                        f"{list(spec.dims)}"
                    )

    def feeds(self) -> Iterator[dict[str, np.ndarray]]:
        """The batches, each as a fresh dict (what onnxruntime's calibration reader hands out)."""
        for batch in self.batches:
            yield dict(batch)


def _fits(shape: tuple[int, ...], dims: tuple[int | str, ...]) -> bool:
    return len(shape) == len(dims) and all(
        not isinstance(d, int) or d <= 0 or d == s for s, d in zip(shape, dims, strict=True)
    )


def _check_samples(samples: object) -> None:
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise CalibrationError(f"samples={samples!r}, expected a positive int")


def _batch_size(spec: TensorSpec, batch_size: int) -> int:
    first = spec.dims[0] if spec.dims else 1
    return first if isinstance(first, int) and first > 0 else batch_size


def calibration_from_arrays(
    arrays: Mapping[str, np.ndarray],
    inputs: Sequence[TensorSpec],
    *,
    source: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Calibration:
    """Arrays ``(N, ...)`` per input name, split along axis 0 into batches; floats cast to the input's type."""
    if batch_size < 1:
        raise CalibrationError(f"batch_size={batch_size!r}, expected a positive int")
    specs = {s.name: s for s in inputs}
    if set(arrays) != set(specs):
        raise CalibrationError(
            f"calibration data from {source} holds {sorted(arrays)}; the model's inputs are "
            f"{sorted(specs)} (name the arrays like the inputs)"
        )
    data: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        want = np.dtype(specs[name].dtype)
        if array.dtype != want:
            if not (np.issubdtype(array.dtype, np.floating) and np.issubdtype(want, np.floating)):
                raise CalibrationError(
                    f"calibration array {name!r} from {source} is {array.dtype}; "
                    f"the model's input takes {want}"
                )
            array = array.astype(want)
        owned = np.array(array, order="C", copy=True)  # the caller may go on changing its array
        owned.flags.writeable = False
        data[name] = owned
    counts = {name: a.shape[0] if a.ndim else 0 for name, a in data.items()}
    n = min(counts.values())
    if n == 0 or len(set(counts.values())) != 1:
        raise CalibrationError(
            f"calibration arrays from {source} must hold the same number (>= 1) of samples "
            f"along axis 0; they hold {counts}"
        )
    step = max(_batch_size(specs[name], batch_size) for name in data)
    batches = tuple(
        {name: a[start : start + step] for name, a in data.items()}
        for start in range(0, n - step + 1, step)
    )
    if not batches:
        raise CalibrationError(
            f"calibration data from {source}: {n} samples, fewer than one batch of {step}"
        )
    calibration = Calibration(batches, source)
    calibration.check(inputs)
    return calibration


def _image_input(inputs: Sequence[TensorSpec], what: str) -> TensorSpec:
    if len(inputs) != 1:
        raise CalibrationError(
            f"{what} can feed a model with one image input; this model takes "
            f"{[s.name for s in inputs]} (pass an .npz with one array per input)"
        )
    return inputs[0]


def calibration_from_dataset(
    dataset: Dataset,
    inputs: Sequence[TensorSpec],
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    standardize: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Calibration:
    """``samples`` training images (a seeded sample), preprocessed like evaluation (:class:`DatasetInputs`)."""
    _check_samples(samples)
    spec = _image_input(inputs, f"dataset {dataset.name!r}")
    try:
        prepared = DatasetInputs.for_input(dataset, spec, standardize=standardize)
    except EvaluationError as exc:
        raise CalibrationError(str(exc)) from exc
    index = np.sort(np.random.default_rng(seed).permutation(len(dataset.y_train))[:samples])
    source = f"dataset {dataset.name} (train split, {len(index)} samples, seed {seed})"
    return calibration_from_arrays(
        {spec.name: prepared.images("train", index)}, inputs, source=source, batch_size=batch_size
    )


def calibration_from_npz(
    path: str | Path,
    inputs: Sequence[TensorSpec],
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> Calibration:
    """An ``.npz`` of a dataset, of one array per input, or of one array (see the module docstring)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"{path}: cannot read it as .npz ({exc})") from exc
    if _DATASET_KEYS <= set(arrays):
        try:
            dataset = load_npz(path)
        except DatasetError as exc:
            raise CalibrationError(str(exc)) from exc
        return calibration_from_dataset(dataset, inputs, samples=samples, seed=seed)
    names = {s.name for s in inputs}
    if len(arrays) == 1 and len(inputs) == 1 and set(arrays) != names:
        arrays = {inputs[0].name: next(iter(arrays.values()))}
    return calibration_from_arrays(arrays, inputs, source=str(path))


def random_calibration(
    inputs: Sequence[TensorSpec],
    *,
    samples: int = DEFAULT_RANDOM_SAMPLES,
    seed: int = 0,
    warn: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Calibration:
    """Standard-normal inputs (seeded); warns with RandomCalibrationWarning unless ``warn=False``."""
    _check_samples(samples)
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in inputs:
        dtype = np.dtype(spec.dtype)
        if not np.issubdtype(dtype, np.floating):
            raise CalibrationError(
                f"random calibration makes float inputs only; input {spec.name!r} takes "
                f"{spec.dtype}: pass calibration data (an .npz with one array per input)"
            )
        try:
            per_sample = spec.shape(batch=1)[1:]
        except InvalidModel as exc:  # a symbolic dim past the batch dim
            raise CalibrationError(str(exc)) from exc
        step = _batch_size(spec, batch_size)
        count = -(-samples // step) * step
        arrays[spec.name] = rng.standard_normal((count, *per_sample)).astype(dtype)
    if warn:
        warnings.warn(
            "int8 activations are calibrated on random normal data, not on your data: "
            "the int8 model's accuracy will be off; pass calibration data "
            "(a dataset or an .npz, e.g. --calibration data.npz)",
            RandomCalibrationWarning,
            stacklevel=2,
        )
    calibration = calibration_from_arrays(
        arrays, inputs, source=f"random normal data (seed {seed})", batch_size=batch_size
    )
    return Calibration(calibration.batches, calibration.source, random=True)


CalibrationSource: TypeAlias = Calibration | Dataset | str | Path | None


def calibration_for(
    data: bytes, source: CalibrationSource, *, seed: int = 0, warn: bool = True
) -> Calibration:
    """The calibration for model ``data`` from ``source``.

    ``source`` is a Calibration (checked against the model), a Dataset, a
    path to an ``.npz``, a dataset spec for
    :func:`~fleetnas.controller.accuracy.load_dataset` (``"digits"``, an image
    folder), or None: random data, with the warning.
    """
    inputs = input_specs(load_model(data, check=False))
    if isinstance(source, Calibration):
        source.check(inputs)
        return source
    if source is None:
        return random_calibration(inputs, seed=seed, warn=warn)
    if isinstance(source, Dataset):
        return calibration_from_dataset(source, inputs, seed=seed)
    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise CalibrationError(f"{path}: no such file")
        return calibration_from_npz(path, inputs, seed=seed)
    try:
        dataset = load_dataset(str(source), seed=seed)
    except DatasetError as exc:
        raise CalibrationError(f"calibration {str(source)!r}: {exc}") from exc
    return calibration_from_dataset(dataset, inputs, seed=seed)
