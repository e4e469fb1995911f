"""The surrogate's feature rows of archs, each computed once per search.

The hybrid and LUT sources ask for the rows of every measured arch at every
refit and of every predicted arch at every refresh: an arch's row
(:func:`~._surrogate.arch_features`: the space's features plus log FLOPs and
params) is computed the first time and kept for the search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fleetnas.controller.driver._surrogate import arch_features
from fleetnas.controller.spaces import Arch, SearchSpace


class FeatureCache:
    """``arch_features`` of each arch, computed once (the sources ask for them every refit).

    Rows are also kept in one growing float matrix, an arch's slot found by the
    arch object's identity first (a search passes its candidates' own arch
    objects again and again, and an int hashes faster than an arch; the entry
    holds the arch, so no other object can take its id while the entry lives),
    so :meth:`rows` is one fancy-index, not a conversion of Python lists.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._rows: dict[object, list[float]] = {}
        self._slots: dict[int, tuple[Arch, int]] = {}
        self._matrix = np.zeros((0, 0))
        self._used = 0
        self._last: tuple[tuple[int, ...], list[Arch], np.ndarray] | None = None

    def __call__(self, arch: Arch) -> list[float]:
        return self._by_value(arch)

    def _by_value(self, arch: Arch) -> list[float]:
        key: object
        try:  # a hashable arch (a frozen dataclass) is its own key: encoding it costs more
            hash(arch)
            key = arch
        except TypeError:
            key = self.space.encode(arch)
        if key not in self._rows:
            self._rows[key] = arch_features(self.space, arch)
        return self._rows[key]

    def _slot(self, arch: Arch) -> int:
        seen = self._slots.get(id(arch))
        if seen is not None and seen[0] is arch:
            return seen[1]
        row = self._by_value(arch)
        if self._used == len(self._matrix) or self._matrix.shape[1] != len(row):
            if self._used and self._matrix.shape[1] != len(row):
                raise ValueError(f"feature rows of {len(row)} and {self._matrix.shape[1]} values")
            grown = np.zeros((max(64, 2 * len(self._matrix)), len(row)))
            if self._used:
                grown[:self._used] = self._matrix[:self._used]
            self._matrix = grown
        self._matrix[self._used] = row
        self._slots[id(arch)] = (arch, self._used)
        self._used += 1
        return self._used - 1

    def rows(self, archs: Sequence[Arch]) -> np.ndarray:
        """The feature rows of ``archs`` as one read-only float matrix (shape ``(0,)`` for
        none). The last matrix is kept: every predictor of a step asks for the same archs
        (each target's latency is measured on the same candidates), so the others get it
        without building it again."""
        key = tuple(id(a) for a in archs)
        last = self._last
        if last is not None and last[0] == key:
            return last[2]
        if not archs:
            matrix = np.zeros(0)
        else:
            slots = np.fromiter((self._slot(a) for a in archs), dtype=np.intp, count=len(archs))
            matrix = self._matrix[slots]
        matrix.flags.writeable = False
        self._last = (key, list(archs), matrix)  # the archs held: their ids stay theirs
        return matrix
