"""Accuracy estimators from their text spec, as stored with a search and typed on the CLI.

=============================  ===================================================
spec                           estimator
=============================  ===================================================
``naswot``                     :class:`NaswotEstimator` (cheap: one forward pass)
``synflow``                    :class:`SynflowEstimator` (cheap)
``train:DATA[,epochs=N]``      :class:`ShortTrainingEstimator` on ``load_dataset(DATA)``
                               (``digits``, ``synthetic``, a ``.npz`` or a folder);
                               expensive
``plugin:MODULE:FUNCTION``     :class:`PluginEstimator` (cheap unless told otherwise)
=============================  ===================================================

Importing this module does not import torch; :func:`make_estimator` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetnas.controller.driver._errors import SearchConfigError

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator

_TRAIN_OPTIONS = {"epochs": int, "batch_size": int, "max_train_samples": int,
                  "max_val_samples": int, "seed": int, "lr": float}


def check_accuracy_spec(spec: str) -> None:
    """Raise SearchConfigError unless ``spec`` has one of the forms above (imports nothing)."""
    kind, _, rest = spec.partition(":")
    if kind in ("naswot", "synflow") and not rest:
        return
    if kind == "train" and rest:
        _train_options(spec, rest)
        return
    if kind == "plugin" and rest.count(":") == 1:
        return
    raise SearchConfigError(
        f"accuracy {spec!r}: expected naswot, synflow, train:DATA[,epochs=N] "
        "(DATA: digits, synthetic, a .npz file or an image folder) or plugin:MODULE:FUNCTION"
    )


def _train_options(spec: str, rest: str) -> tuple[str, dict[str, int | float]]:
    data, *items = rest.split(",")
    options: dict[str, int | float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in _TRAIN_OPTIONS:
            raise SearchConfigError(
                f"accuracy {spec!r}: option {item!r}; known: {', '.join(_TRAIN_OPTIONS)}"
            )
        try:
            options[key] = _TRAIN_OPTIONS[key](value)
        except ValueError:
            raise SearchConfigError(f"accuracy {spec!r}: {key}={value!r} is not a number") from None
    return data, options


def is_expensive(spec: str, cost: str = "auto") -> bool:
    """Whether estimating costs enough that hybrid mode should predict it too."""
    if cost != "auto":
        return cost == "expensive"
    return spec.startswith("train:")


def make_estimator(spec: str) -> AccuracyEstimator:
    """The estimator ``spec`` names (imports torch). Raises SearchConfigError,
    DatasetError (a dataset that cannot be read) or PluginError."""
    from fleetnas.controller.accuracy import (
        NaswotEstimator,
        PluginEstimator,
        ShortTrainingEstimator,
        SynflowEstimator,
        load_dataset,
    )

    check_accuracy_spec(spec)
    kind, _, rest = spec.partition(":")
    if kind == "naswot":
        return NaswotEstimator()
    if kind == "synflow":
        return SynflowEstimator()
    if kind == "train":
        data, options = _train_options(spec, rest)
        return ShortTrainingEstimator(load_dataset(data), **options)  # type: ignore[arg-type]
    return PluginEstimator(rest)
