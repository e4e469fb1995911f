"""Named errors of the supernet package."""

from __future__ import annotations

from fleetnas.controller.accuracy._errors import EstimatorError


class SupernetError(EstimatorError):
    """A supernet that cannot be built, trained, loaded or asked about this arch."""


class SupernetNotFound(SupernetError, LookupError):
    """No stored supernet under this key (or none trained to completion)."""
