"""Argument checks shared by the strategies and operators: ValueError naming the bad value."""

from __future__ import annotations

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
