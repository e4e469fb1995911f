"""Accuracy estimators: training-free proxies, short training on a dataset, user plugins.

Tabular accuracies (``TableEstimator``: arch -> accuracy from a CSV) and,
in :mod:`.supernet`, a weight-sharing supernet are estimators too.
Every estimator implements :class:`AccuracyEstimator` (``estimate(space,
arch) -> float``, higher is better) and turns into a search objective with
:meth:`AccuracyEstimator.as_objective`::

    from fleetnas.controller.accuracy import NaswotEstimator
    accuracy = NaswotEstimator(batch_size=32, seed=0).as_objective(space)

Datasets for training come from ``.npz`` files, image folders, scikit-learn's
digits (when installed) or a synthetic generator (:func:`load_dataset`).
Importing this package imports torch. See ``docs/search.md``.
"""

from __future__ import annotations

from fleetnas.controller.accuracy._base import (
    AccuracyEstimator,
    DeployableEstimator,
    EstimatorSetup,
    SetupProgress,
)
from fleetnas.controller.accuracy._compare import (
    Comparison,
    EstimatorRanking,
    compare_estimators,
)
from fleetnas.controller.accuracy._data import (
    Dataset,
    adapt_images,
    load_dataset,
    load_digits,
    load_image_folder,
    load_npz,
    split_arrays,
    synthetic_dataset,
)
from fleetnas.controller.accuracy._errors import (
    DatasetError,
    EstimatorError,
    PluginError,
    TableError,
)
from fleetnas.controller.accuracy._plugin import PluginEstimator, load_callable
from fleetnas.controller.accuracy._proxies import (
    ACTIVATIONS,
    NaswotEstimator,
    SynflowEstimator,
    naswot_score,
    synflow_score,
)
from fleetnas.controller.accuracy._table import TableEstimator
from fleetnas.controller.accuracy._torch_utils import fit_head
from fleetnas.controller.accuracy._training import ShortTrainingEstimator

__all__ = [
    "ACTIVATIONS",
    "AccuracyEstimator",
    "Comparison",
    "Dataset",
    "DatasetError",
    "DeployableEstimator",
    "EstimatorError",
    "EstimatorRanking",
    "EstimatorSetup",
    "NaswotEstimator",
    "PluginError",
    "PluginEstimator",
    "SetupProgress",
    "ShortTrainingEstimator",
    "SynflowEstimator",
    "TableError",
    "TableEstimator",
    "adapt_images",
    "compare_estimators",
    "fit_head",
    "load_callable",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_npz",
    "naswot_score",
    "split_arrays",
    "synflow_score",
    "synthetic_dataset",
]
