"""Objectives: what a search optimises, by name and direction.

An objective is a name and a direction. Names are free-form identifiers with
an optional bracketed qualifier that names a device or device class:
``accuracy``, ``params``, ``flops``, ``latency[rpi4]``, ``latency[jetson]``,
``peak_memory[rpi4]``, ``energy[jetson]``. Several latency objectives (one per device class) are
the normal multi-device case, not a special one.

Values told to the engine are in canonical units: latency in milliseconds,
energy in millijoules per inference, memory in bytes, params and FLOPs as plain counts, accuracy as a fraction (or
whatever scale the estimator returns: only the order matters to the search).

:class:`CallableObjective` wraps any Python callable ``arch -> float``; the
engine's driver evaluates those itself (:meth:`SearchEngine.evaluate_callables`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleetnas.controller.search._pareto import MAXIMIZE, MINIMIZE

_NAME = re.compile(r"^(?P<base>[A-Za-z_][A-Za-z0-9_.\-]*)(?:\[(?P<qualifier>[^\[\]\s]+)\])?$")

#: base names maximised by default in :func:`parse_objective`
MAXIMIZED_BY_DEFAULT = frozenset({"accuracy", "acc", "top1", "score"})


def split_name(name: str) -> tuple[str, str | None]:
    """``"latency[rpi4]"`` -> ``("latency", "rpi4")``; ``"params"`` -> ``("params", None)``.

    Raises ValueError for a name that is not ``base`` or ``base[qualifier]``.
    """
    match = _NAME.match(name)
    if match is None:
        raise ValueError(
            f"objective name {name!r}: expected an identifier with an optional "
            "[device] qualifier, e.g. 'accuracy' or 'latency[rpi4]'"
        )
    return match.group("base"), match.group("qualifier")


@dataclass(frozen=True)
class Objective:
    """One objective: ``name`` (see module docstring) and ``direction``.

    ``sign`` is +1 for minimise and -1 for maximise, so ``sign * value`` is the
    minimisation form every search algorithm works on. ``label`` is what
    people read (tables, plots, CSV/JSON keys), e.g. ``"naswot score"`` for an
    ``accuracy`` objective estimated by a proxy; ``None`` shows ``name``.
    Equality ignores it: the search and its stored state key on ``name``.
    """

    name: str
    direction: str = MINIMIZE
    label: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        split_name(self.name)
        if self.direction not in (MINIMIZE, MAXIMIZE):
            raise ValueError(
                f"objective {self.name!r}: direction {self.direction!r}, "
                "expected 'minimize' or 'maximize'"
            )

    @property
    def base(self) -> str:
        """The name without its qualifier (``latency`` for ``latency[rpi4]``)."""
        return split_name(self.name)[0]

    @property
    def qualifier(self) -> str | None:
        """The bracketed device or device class, if any."""
        return split_name(self.name)[1]

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == MINIMIZE else -1.0

    @property
    def display_name(self) -> str:
        """``label`` when set, else ``name``: the heading people read."""
        return self.label or self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (a callable objective's function is not included)."""
        out: dict[str, Any] = {"name": self.name, "direction": self.direction}
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclass(frozen=True, init=False)
class CallableObjective(Objective):
    """An objective computed by ``fn(arch) -> float`` in the driver's process.

    ``CallableObjective(name, fn, direction="minimize")``. ``fn`` must be
    deterministic for the search to be reproducible. Equality and hashing
    ignore ``fn`` (two objectives are the same if name and direction are).
    """

    fn: Callable[[Any], float] = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __init__(self, name: str, fn: Callable[[Any], float], direction: str = MINIMIZE,
                 label: str | None = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "fn", fn)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.fn):
            raise ValueError(f"objective {self.name!r}: fn {self.fn!r} is not callable")

    def evaluate(self, arch: Any) -> float:
        """``float(fn(arch))``; ValueError when the result is not a finite number."""
        value = self.fn(arch)
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"objective {self.name!r}: fn returned {value!r}, not a number"
            ) from exc
        if not math.isfinite(number):
            raise ValueError(f"objective {self.name!r}: fn returned {number}, not finite")
        return number


def parse_objective(text: str) -> Objective:
    """``"latency[rpi4]"``, ``"accuracy"``, ``"params:min"``, ``"score:max"`` -> Objective.

    Without a ``:min``/``:max`` suffix the direction is maximise for the base
    names in :data:`MAXIMIZED_BY_DEFAULT` (accuracy-like) and minimise for the
    rest (latency, params, flops, memory...).
    """
    name, sep, suffix = text.strip().partition(":")
    name = name.strip()
    if sep:
        suffix = suffix.strip().lower()
        directions = {"min": MINIMIZE, "minimize": MINIMIZE, "max": MAXIMIZE, "maximize": MAXIMIZE}
        if suffix not in directions:
            raise ValueError(
                f"objective {text!r}: direction suffix {suffix!r}, expected ':min' or ':max'"
            )
        return Objective(name, directions[suffix])
    base, _ = split_name(name)
    return Objective(name, MAXIMIZE if base in MAXIMIZED_BY_DEFAULT else MINIMIZE)
