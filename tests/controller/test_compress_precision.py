"""Precision names and lists: parsing, aliases, and precise errors for bad input."""

from __future__ import annotations

import pytest

from fleetnas.controller.compress import (
    GENE_PRECISIONS,
    Precision,
    UnknownPrecision,
    parse_precision,
    parse_precisions,
)


def test_gene_precisions_are_the_makeable_ones_in_a_stable_order() -> None:
    assert [p.value for p in GENE_PRECISIONS] == ["fp32", "fp16", "int8", "int8-dynamic"]
    assert all(p.makeable for p in GENE_PRECISIONS)
    assert not Precision.MIXED.makeable
    assert str(Precision.INT8_DYNAMIC) == "int8-dynamic"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fp32", Precision.FP32),
        (" FP16 ", Precision.FP16),
        ("int8", Precision.INT8),
        ("int8-static", Precision.INT8),
        ("int8_dynamic", Precision.INT8_DYNAMIC),
        ("int8-dyn", Precision.INT8_DYNAMIC),
    ],
)
def test_parse_precision_names_and_aliases(text: str, expected: Precision) -> None:
    assert parse_precision(text) is expected


def test_unknown_precision_lists_the_choices() -> None:
    with pytest.raises(UnknownPrecision, match=r"unknown precision 'int4'; choose from fp32, fp16, int8, int8-dynamic"):
        parse_precision("int4")
    with pytest.raises(UnknownPrecision, match="only detected"):
        parse_precision("mixed")
    with pytest.raises(UnknownPrecision, match="expected a name"):
        parse_precision(8)  # type: ignore[arg-type]


def test_parse_precisions_keeps_order_with_either_separator() -> None:
    assert parse_precisions("fp32,int8") == (Precision.FP32, Precision.INT8)
    assert parse_precisions("int8|fp32") == (Precision.INT8, Precision.FP32)
    assert parse_precisions("fp16, int8-dynamic |fp32") == (
        Precision.FP16, Precision.INT8_DYNAMIC, Precision.FP32,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty precision list"),
        ("  ", "empty precision list"),
        ("fp32,,int8", "has an empty item"),
        ("fp32,", "has an empty item"),
        ("int8,int8-static", "names int8 twice"),
        ("fp32,bf16", "unknown precision 'bf16'"),
    ],
)
def test_bad_precision_lists_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UnknownPrecision, match=message):
        parse_precisions(text)
