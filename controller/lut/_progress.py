"""Progress of long LUT work (exporting, measuring), reported to a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LutProgress:
    """Passed to a progress callback after each item (block or arch) of each phase.

    ``phase`` is ``"export"``, ``"convert"`` (to a precision LUT's precision),
    ``"measure"`` or ``"remeasure"`` (noisy blocks measured again, see
    ``build_lut``); ``item`` the block key or arch
    encoding just done; ``cached``, ``measured`` and ``failed`` count the
    measure phase's outcomes so far.
    """

    phase: str
    done: int
    total: int
    item: str
    cached: int = 0
    measured: int = 0
    failed: int = 0


ProgressCallback = Callable[[LutProgress], None]
