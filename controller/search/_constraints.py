"""Constraints: bounds on a named value, parsed from text like ``latency[rpi4] <= 30 ms``.

Grammar: ``NAME OP NUMBER [UNIT]`` where ``OP`` is ``<=`` or ``>=`` (``≤``/``≥``
too). Strict ``<``/``>`` are refused: on measured, continuous values they mean
the same as the non-strict forms and would only hide a typo. Units convert to
the canonical unit of the value's family, chosen from the name's base:

=============================  =========  ==========================================
base name                      canonical  units accepted
=============================  =========  ==========================================
``latency``/``time`` ...       ms         ``ms``, ``s``, ``us``/``µs`` (none = ms)
``energy`` (per inference)     mJ         ``mJ``, ``J``, ``uJ``/``µJ`` (none = mJ)
``peak_memory``/``memory``     bytes      ``B``, ``KB``, ``MB``, ``GB``, ``KiB``, ``MiB``, ``GiB``
``params``/``flops``/``macs``  count      ``K``, ``M``, ``G`` (none = count)
accuracy-like                  fraction   ``%`` (none = fraction)
anything else                  as told    ``K``, ``M``, ``G`` (none = as told)
=============================  =========  ==========================================

A constraint can name an objective or any other value the driver tells the
engine (e.g. ``params <= 5 M`` while optimising accuracy and latency).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.search._objectives import MAXIMIZED_BY_DEFAULT, split_name

_TEXT = re.compile(
    r"^\s*(?P<name>[^<>=≤≥\s]+)\s*(?P<op><=|>=|≤|≥|==|=|<|>)\s*"
    r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-zµ%]*)\s*$"
)

_TIME = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_BYTES = {
    "": 1.0,
    "B": 1.0,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "KiB": 1024.0,
    "MiB": 1024.0**2,
    "GiB": 1024.0**3,
}
_ENERGY = {"": 1.0, "mJ": 1.0, "J": 1000.0, "uJ": 1e-3, "µJ": 1e-3}
_COUNT = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9}
_FRACTION = {"": 1.0, "%": 0.01}


def _units_for(base: str) -> tuple[str, dict[str, float]]:
    lowered = base.lower()
    if lowered.startswith("latency") or lowered in ("time", "runtime"):
        return "time", _TIME
    if lowered == "energy":
        return "energy", _ENERGY
    if "memory" in lowered:
        return "memory", _BYTES
    if lowered in ("params", "flops", "macs"):
        return "count", _COUNT
    if lowered in MAXIMIZED_BY_DEFAULT:
        return "fraction", _FRACTION
    return "value", _COUNT


@dataclass(frozen=True)
class Constraint:
    """``name op bound``: ``op`` is ``"<="`` or ``">="``, ``bound`` in canonical units.

    ``text`` is the constraint as written by the user (the key its violation is
    reported under).
    """

    name: str
    op: str
    bound: float
    text: str

    def __post_init__(self) -> None:
        split_name(self.name)
        if self.op not in ("<=", ">="):
            raise ValueError(
                f"constraint {self.text!r}: operator {self.op!r}, expected '<=' or '>='"
            )

    def violation(self, value: float) -> float:
        """How far ``value`` is on the wrong side of the bound (0 when satisfied)."""
        excess = value - self.bound if self.op == "<=" else self.bound - value
        return max(0.0, excess)

    def relative_violation(self, value: float) -> float:
        """:meth:`violation` divided by ``|bound|`` (raw when the bound is 0).

        Makes violations of constraints in different units comparable, so the
        engine can add them into one total (Deb's overall constraint violation).
        """
        amount = self.violation(value)
        return amount / abs(self.bound) if self.bound != 0.0 else amount

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "bound": self.bound, "text": self.text}


def parse_constraint(text: str) -> Constraint:
    """Parse ``"latency[rpi4] <= 30 ms"``-style text into a :class:`Constraint`.

    Raises ValueError naming what was expected when the syntax, operator or
    unit is wrong.
    """
    match = _TEXT.match(text)
    if match is None:
        raise ValueError(
            f"constraint {text!r}: expected 'NAME <= NUMBER [UNIT]' or 'NAME >= NUMBER [UNIT]', "
            "e.g. 'latency[rpi4] <= 30 ms' or 'params <= 5 M'"
        )
    name, op, unit = match.group("name"), match.group("op"), match.group("unit")
    try:
        base, _ = split_name(name)
    except ValueError as exc:
        raise ValueError(f"constraint {text!r}: {exc}") from exc
    op = {"≤": "<=", "≥": ">="}.get(op, op)
    if op not in ("<=", ">="):
        raise ValueError(
            f"constraint {text!r}: operator {op!r} is not supported, expected '<=' or '>='"
        )
    family, units = _units_for(base)
    if unit not in units:
        accepted = ", ".join(repr(u) for u in units if u) or "none"
        raise ValueError(
            f"constraint {text!r}: unit {unit!r} does not apply to {base!r} ({family}); "
            f"expected one of {accepted} or no unit"
        )
    bound = float(match.group("number")) * units[unit]
    return Constraint(name=name, op=op, bound=bound, text=" ".join(text.split()))
