"""fp16 variants with ``onnxconverter-common``'s float16 converter.

Two well-kept converters exist: ``onnxruntime.transformers.float16`` (inside
onnxruntime) and ``onnxconverter_common.float16`` (the original, maintained
by the ONNX converters team; onnxruntime's is a fork of it). Compared here
(onnxruntime 1.32, onnxconverter-common 1.16) on an mbv3 export and a small
CNN: the same float16 weights and the same outputs, but with
``keep_io_types`` onnxruntime's appends the input Cast *after* the nodes
that read it, so its graphs fail ``onnx.checker`` ("nodes must be
topologically sorted"); onnxruntime itself sorts on load, but other tools
and runtimes need not. ``onnxconverter-common`` puts the Cast first and its
output passes the checker, so it is the one used (a small pure-Python
dependency: numpy, onnx, packaging, protobuf).

The converter warns for every tensor it clamps into float16's range. Values
below float16's smallest normal number (clamped to +-1e-7) change nothing
that matters and are logged at DEBUG; values beyond +-65504 change the
network, and are reported in one UserWarning per conversion.

Ops without float16 kernels (the converter's default block list) stay
float32 behind Casts. ``keep_io_types=True`` (the default) keeps the
graph's inputs and outputs float32, so callers feed the same data as the
fp32 model; ``False`` makes them float16 too.

Pure: the same bytes give the same bytes. Weights beyond float16's range
are clamped to +-65504 (and tiny ones to +-5.96e-8) by the converter.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from fleetnas.controller.compress._errors import NotCompressible
from fleetnas.controller.compress._ort_tools import (
    check_result,
    log,
    ort_tool_call,
    require_fp32,
)
from fleetnas.controller.compress._precision import Precision


@dataclass(frozen=True)
class Fp16Options:
    """Options of :func:`convert_fp16`; the defaults are what a gene ``fp16`` means."""

    keep_io_types: bool = True


def convert_fp16(data: bytes, options: Fp16Options | None = None) -> bytes:
    """The float16 model of float32 ``data``; NotCompressible when there is nothing to convert."""
    from onnxconverter_common.float16 import convert_float_to_float16

    keep_io_types = (options or Fp16Options()).keep_io_types
    model = require_fp32(data, Precision.FP16)
    with ort_tool_call(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            converted = convert_float_to_float16(model, keep_io_types=keep_io_types)
        except Exception as exc:  # the converter raises ValueError, onnx errors, ...
            raise NotCompressible(
                f"onnxconverter-common's float16 converter failed: {type(exc).__name__}: {exc}"
            ) from exc
    _report_clamping([str(w.message) for w in caught])
    return check_result(converted.SerializeToString(), Precision.FP16, "the float16 converter")


_CLAMP = re.compile(r"the float32 number (\S+) will be truncated to (\S+)")


def _report_clamping(messages: list[str]) -> None:
    """One warning for values clamped to +-65504; the rest at DEBUG."""
    large = []
    for message in messages:
        match = _CLAMP.fullmatch(message)
        if match and abs(float(match.group(2))) >= 65504.0:
            large.append(abs(float(match.group(1))))
        else:
            log.debug("float16 converter: %s", message)
    if large:
        warnings.warn(
            f"fp16: {len(large)} tensors hold values beyond float16's range, clamped to "
            f"+-65504 (largest |value| {max(large):.6g}); the fp16 variant computes differently",
            UserWarning,
            stacklevel=3,
        )
