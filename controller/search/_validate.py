"""Argument checks shared by the strategies and operators: ValueError naming the bad value."""

from __future__ import annotations

import math
from typing import Any


def positive_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` when it is an int >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name}={value!r}, expected an integer >= {minimum}")
    return value


def probability(owner: str, name: str, value: object) -> float:
    """``float(value)`` when it is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name}={value!r}, expected a probability in [0, 1]")
    return float(value)


def instance_of(owner: str, name: str, value: object, expected: type) -> Any:
    """``value`` when it is an instance of ``expected``."""
    if not isinstance(value, expected):
        raise ValueError(f"{owner}: {name}={value!r}, expected a {expected.__name__}")
    return value


def finite_float(label: str, value: object) -> float:
    """``float(value)`` when it is a finite number; ValueError naming ``label`` otherwise."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label}={value!r} is not a number") from exc
    if not math.isfinite(number):
        raise ValueError(f"{label}={number}: not a finite number")
    return number
