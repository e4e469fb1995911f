"""Precisions: the names a deployment gene takes, and parsing of precision lists.

A precision is how a network's ONNX graph computes: ``fp32`` (as exported),
``fp16`` (weights and compute in half precision, inputs and outputs kept
float32), ``int8`` (static quantization in QDQ format: per-channel int8
weights, activations quantized with scales calibrated on data) and
``int8-dynamic`` (int8 weights, activation scales computed at run time).
``mixed`` is only ever *detected* (a graph holding evidence of more than one
of them); it is not something this library makes.

Lists are written ``fp32,int8`` (the CLI's ``--precision``) or ``int8|fp32``
(inside a ``--device pi4:precision=int8|fp32`` spec): order is kept, names
are case-insensitive, ``int8-static`` and ``int8-dyn`` are accepted aliases.
"""

from __future__ import annotations

import enum
import re

from fleetnas.controller.compress._errors import UnknownPrecision


class Precision(str, enum.Enum):
    """A precision; ``.value`` is the stable name stored in the cost DB and shown on the CLI."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT8_DYNAMIC = "int8-dynamic"
    MIXED = "mixed"

    def __str__(self) -> str:
        return self.value

    @property
    def makeable(self) -> bool:
        """Whether this library can make a variant of this precision (all but ``mixed``)."""
        return self is not Precision.MIXED


#: the precisions a candidate's per-device gene can take, in a stable order
GENE_PRECISIONS: tuple[Precision, ...] = (
    Precision.FP32,
    Precision.FP16,
    Precision.INT8,
    Precision.INT8_DYNAMIC,
)

_ALIASES: dict[str, Precision] = {
    "int8-static": Precision.INT8,
    "int8-dyn": Precision.INT8_DYNAMIC,
}
_SEPARATORS = re.compile(r"[,|]")


def _choices() -> str:
    return ", ".join(p.value for p in GENE_PRECISIONS)


def parse_precision(text: str) -> Precision:
    """The gene precision named ``text``; UnknownPrecision (listing the names) otherwise."""
    if not isinstance(text, str):
        raise UnknownPrecision(f"precision {text!r}: expected a name, one of {_choices()}")
    name = text.strip().lower().replace("_", "-")
    if name in _ALIASES:
        return _ALIASES[name]
    if name == Precision.MIXED.value:
        raise UnknownPrecision(
            "precision 'mixed' is only detected in a graph, never made; "
            f"choose from {_choices()}"
        )
    try:
        return Precision(name)
    except ValueError:
        raise UnknownPrecision(f"unknown precision {text!r}; choose from {_choices()}") from None


def parse_precisions(text: str) -> tuple[Precision, ...]:
    """``"fp32,int8"`` or ``"int8|fp32"`` -> the precisions in order.

    Raises UnknownPrecision for an empty list, an empty item (``"fp32,,int8"``),
    an unknown name or a precision named twice (aliases included).
    """
    if not isinstance(text, str) or not text.strip():
        raise UnknownPrecision(f"empty precision list {text!r}; e.g. 'fp32,int8' ({_choices()})")
    out: list[Precision] = []
    for item in _SEPARATORS.split(text):
        if not item.strip():
            raise UnknownPrecision(
                f"precision list {text!r} has an empty item; separate names with ',' or '|'"
            )
        precision = parse_precision(item)
        if precision in out:
            raise UnknownPrecision(f"precision list {text!r} names {precision.value} twice")
        out.append(precision)
    return tuple(out)
