"""One entry point for every precision: ``make_variant(fp32_bytes, precision)``.

This is what the search, the LUT builder and ``fleetnas quantize`` call; the
converter of each gene precision is listed once, in :data:`CONVERTERS`.
``fp32`` is the identity (the bytes come back unchanged, once checked to be
float32). ``int8`` needs calibration data: a
:class:`~fleetnas.controller.compress.Calibration`, a Dataset, an ``.npz``
path or a dataset spec; None means random data, with a
:class:`RandomCalibrationWarning`. Each converter's options are a frozen
dataclass whose defaults are what the gene's name means; they are part of
the variant's identity.

With ``cache_dir`` a variant is stored on disk under a key naming everything
that could change its bytes (the source's sha256, the precision and its
options, the calibration data's sha256, the onnx and onnxruntime versions,
:data:`FORMAT_VERSION`), so a repeated request is a file read; the key
cannot be hit by a different input, so a hit is never wrong. Without
``cache_dir`` nothing is written.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from fleetnas.controller.compress._calibration import (
    Calibration,
    CalibrationSource,
    calibration_for,
)
from fleetnas.controller.compress._fp16 import Fp16Options, convert_fp16
from fleetnas.controller.compress._ort_tools import require_fp32
from fleetnas.controller.compress._precision import Precision, parse_precision
from fleetnas.controller.compress._quantize import (
    DynamicQuantOptions,
    StaticQuantOptions,
    quantize_int8_dynamic,
    quantize_int8_static,
)
from fleetnas.controller.export import ModelCache, cache_key

#: bump when a converter starts to write different bytes for the same input
FORMAT_VERSION = 1

Options: TypeAlias = Fp16Options | StaticQuantOptions | DynamicQuantOptions


@dataclass(frozen=True)
class FP32Options:
    """fp32 has no options: the variant is the model itself."""


@dataclass(frozen=True)
class Converter:
    """How one precision is made: ``convert(bytes, calibration, options)``, its options type."""

    convert: Callable[[bytes, Calibration | None, Any], bytes]
    options_type: type
    needs_calibration: bool = False


def _fp32(data: bytes, _calibration: Calibration | None, _options: FP32Options) -> bytes:
    require_fp32(data, Precision.FP32)
    return bytes(data)


def _int8(data: bytes, calibration: Calibration | None, options: StaticQuantOptions) -> bytes:
    assert calibration is not None  # make_variant always supplies one (needs_calibration)
    return quantize_int8_static(data, calibration, options)


CONVERTERS: Mapping[Precision, Converter] = {
    Precision.FP32: Converter(_fp32, FP32Options),
    Precision.FP16: Converter(lambda d, _c, o: convert_fp16(d, o), Fp16Options),
    Precision.INT8: Converter(_int8, StaticQuantOptions, needs_calibration=True),
    Precision.INT8_DYNAMIC: Converter(
        lambda d, _c, o: quantize_int8_dynamic(d, o), DynamicQuantOptions
    ),
}


@dataclass(frozen=True)
class Variant:
    """A precision variant of a float32 model.

    ``calibration_sha256`` / ``calibration_source`` / ``random_calibration``
    describe the calibration of an ``int8`` variant (None / False otherwise);
    ``description`` is the variant's full identity (:func:`variant_description`).
    """

    precision: Precision
    onnx_bytes: bytes = field(repr=False)
    sha256: str
    source_sha256: str
    description: Mapping[str, Any] = field(repr=False, compare=False)
    calibration_sha256: str | None = None
    calibration_source: str | None = None
    random_calibration: bool = False
    cached: bool = field(default=False, compare=False)


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    return tuple((pkg, importlib.metadata.version(pkg)) for pkg in ("onnx", "onnxruntime"))


def variant_description(
    source_sha256: str, precision: Precision, options: Any, calibration: Calibration | None
) -> dict[str, Any]:
    """The canonical, JSON-safe identity of a variant: its cache key and its provenance."""
    return {
        "kind": "variant",
        "source": source_sha256,
        "precision": precision.value,
        "options": dataclasses.asdict(options),
        "calibration": calibration.sha256 if calibration is not None else None,
        "format": FORMAT_VERSION,
        **dict(_versions()),
    }


def _converter(precision: Precision | str, options: Any) -> tuple[Precision, Converter, Any]:
    if not isinstance(precision, Precision):
        precision = parse_precision(precision)
    converter = CONVERTERS.get(precision)
    if converter is None:
        raise ValueError(f"precision {precision.value!r} is only ever detected, never made")
    if options is None:
        options = converter.options_type()
    elif not isinstance(options, converter.options_type):
        raise ValueError(
            f"options for {precision.value} must be {converter.options_type.__name__}, "
            f"got {type(options).__name__}"
        )
    return precision, converter, options


def make_variant(
    data: bytes,
    precision: Precision | str,
    *,
    calibration: CalibrationSource = None,
    options: Options | FP32Options | None = None,
    seed: int = 0,
    cache_dir: Path | str | None = None,
) -> Variant:
    """The ``precision`` variant of the float32 model ``data`` (see the module docstring).

    ``calibration`` is used by ``int8`` only; ``seed`` picks its sample (from
    a Dataset) or its random data. Raises UnknownPrecision, ValueError (options
    of another precision), InvalidModel, NotCompressible and CalibrationError.
    """
    precision, converter, options = _converter(precision, options)
    source_sha = hashlib.sha256(bytes(data)).hexdigest()
    cal = calibration_for(data, calibration, seed=seed) if converter.needs_calibration else None
    description = variant_description(source_sha, precision, options, cal)
    made = functools.partial(
        Variant,
        precision,
        source_sha256=source_sha,
        description=description,
        calibration_sha256=cal.sha256 if cal else None,
        calibration_source=cal.source if cal else None,
        random_calibration=cal.random if cal else False,
    )
    cache = ModelCache(Path(cache_dir)) if cache_dir is not None else None
    key = cache_key(description)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit[1].get("description") == description:
            return made(hit[0], hashlib.sha256(hit[0]).hexdigest(), cached=True)
    out = converter.convert(data, cal, options)
    if cache is not None:
        cache.put(key, out, {"description": description})
    return made(out, hashlib.sha256(out).hexdigest())
