"""Named errors of the accuracy estimators."""

from __future__ import annotations


class EstimatorError(RuntimeError):
    """The estimator cannot score this network (e.g. no activation to hook, no classifier to adapt)."""


class DatasetError(ValueError):
    """A dataset that cannot be loaded, or that does not fit the network's input."""


class PluginError(ValueError):
    """A ``module:function`` plugin that cannot be loaded or returned something unusable."""


class TableError(DatasetError):
    """An accuracy table that cannot be read, does not fit the space, or lacks an arch."""
