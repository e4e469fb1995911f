"""Named errors and warnings of the compression library."""

from __future__ import annotations


class CompressError(RuntimeError):
    """Base class: a precision variant could not be made, detected or evaluated."""


class InvalidModel(CompressError):
    """The bytes are not an ONNX model this library can read (the message says why)."""


class NotCompressible(CompressError):
    """The model cannot be turned into the requested precision (the message says why)."""


class CalibrationError(CompressError):
    """Calibration data that cannot be read or that do not fit the model's inputs."""


class EvaluationError(CompressError):
    """A model that cannot be evaluated on a dataset (inputs or outputs do not fit)."""


class UnknownPrecision(ValueError):
    """A precision name that is not one of the known names (the message lists them)."""


class RandomCalibrationWarning(UserWarning):
    """int8 activations were calibrated on random data, not on the user's data."""
