"""Named errors of latency lookup tables; each message says what to do next."""

from __future__ import annotations


class LutError(Exception):
    """Base class: a LUT could not be built, found, used or moved."""


class LutNotFound(LutError, LookupError):
    """No LUT matches the space, device and settings asked for."""


class AmbiguousLut(LutError, LookupError):
    """Several LUTs match; the message lists them and how to pick one."""


class MissingBlock(LutError, KeyError):
    """An arch contains a block that the LUT has no entry for."""

    def __init__(self, block_key: str, space: str, device: str) -> None:
        super().__init__(block_key)
        self.block_key = block_key
        self.space = space
        self.device = device

    def __str__(self) -> str:
        return (
            f"block {self.block_key} is not in the LUT of {self.space} on {self.device}; "
            f"run `fleetnas lut build --space {self.space.split('{')[0]} --device {self.device}` "
            "(with the --resolution/--space-config of the archs you predict) to measure it"
        )


class CalibrationError(LutError, ValueError):
    """The calibration data cannot give a usable fit (too few archs, degenerate, a <= 0)."""


class LutFormatError(LutError, ValueError):
    """An exported LUT file is malformed; the message names the field."""


class LutMismatch(LutError, ValueError):
    """An imported LUT does not match what was asked for (space, settings, version)."""


class MeasurementFailed(LutError):
    """End-to-end or block measurements failed; the message lists the first failures."""


class PrecisionUnsupported(LutError):
    """A LUT of this precision cannot be built for this device (its runtime takes no ONNX)."""
