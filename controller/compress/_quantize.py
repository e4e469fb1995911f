"""int8 variants made with onnxruntime's own quantization tools.

* :func:`quantize_int8_static`: ``quantize_static`` in QDQ format
  (QuantizeLinear/DequantizeLinear around each quantized op), int8 weights
  per output channel, int8 activations with per-tensor scales from MinMax
  calibration on a :class:`Calibration`; onnxruntime's defaults otherwise.
* :func:`quantize_int8_dynamic`: ``quantize_dynamic``: int8 weights (per
  tensor, onnxruntime's default), activation scales computed at run time
  (DynamicQuantizeLinear + ConvInteger/MatMulInteger).

Both first run ``quant_pre_process`` (symbolic shape inference, onnxruntime's
basic graph optimisation, ONNX shape inference), as onnxruntime recommends:
quantization needs tensor shapes, and folds better on an optimised graph.

Pure functions of their inputs: the same bytes (and calibration) give the
same bytes (the tools run on the CPU provider and MinMax calibration is
exact). Errors: InvalidModel for bytes that are not a valid model;
NotCompressible when the model is not float32 or a tool fails or
quantizes nothing (the message names the tool and its reason);
CalibrationError when the calibration does not fit the model's inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from fleetnas.controller.compress._calibration import Calibration
from fleetnas.controller.compress._errors import NotCompressible
from fleetnas.controller.compress._graph import input_specs
from fleetnas.controller.compress._ort_tools import finish, ort_tool_call, require_fp32
from fleetnas.controller.compress._precision import Precision

ACTIVATION_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class StaticQuantOptions:
    """Options of :func:`quantize_int8_static`; the defaults are what a gene ``int8`` means.

    ``reduce_range`` (7-bit weights) avoids int8 saturation on x86 CPUs
    without VNNI; ``activation_type`` ``"uint8"`` is the other common choice;
    ``pre_process=False`` skips ``quant_pre_process`` (for a model it fails on).
    """

    per_channel: bool = True
    reduce_range: bool = False
    activation_type: str = "int8"
    pre_process: bool = True

    def __post_init__(self) -> None:
        if self.activation_type not in ACTIVATION_TYPES:
            raise ValueError(
                f"activation_type={self.activation_type!r}, expected one of {ACTIVATION_TYPES}"
            )


@dataclass(frozen=True)
class DynamicQuantOptions:
    """Options of :func:`quantize_int8_dynamic`; the defaults are what a gene ``int8-dynamic`` means."""

    per_channel: bool = False
    reduce_range: bool = False
    pre_process: bool = True


def _pre_process(model: onnx.ModelProto, folder: Path) -> Path:
    from onnxruntime.quantization import quant_pre_process

    source, target = folder / "source.onnx", folder / "pre.onnx"
    onnx.save_model(model, str(source))
    try:
        quant_pre_process(str(source), str(target))
    except Exception as exc:  # onnxruntime raises many types; each means "pre-processing failed"
        raise NotCompressible(
            f"onnxruntime's quant_pre_process (shape inference and optimisation) failed: "
            f"{type(exc).__name__}: {exc}; retry with pre_process=False to quantize without it"
        ) from exc
    return target


def _prepare(model: onnx.ModelProto, folder: Path, pre_process: bool) -> Path:
    if pre_process:
        return _pre_process(model, folder)
    source = folder / "source.onnx"
    onnx.save_model(model, str(source))
    return source


def _quantize(
    model: onnx.ModelProto,
    precision: Precision,
    pre_process: bool,
    tool: str,
    call: Callable[[str, str], object],
) -> bytes:
    """Run ``call(source_path, target_path)`` on ``model`` in a fresh folder; the checked result."""
    with ort_tool_call() as folder:
        source, target = _prepare(model, folder, pre_process), folder / f"{precision.value}.onnx"
        try:
            call(str(source), str(target))
        except Exception as exc:  # the quantizers raise ValueError, RuntimeError, ORT's Fail ...
            raise NotCompressible(
                f"onnxruntime's {tool} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return finish(target, precision, tool)


def quantize_int8_static(
    data: bytes, calibration: Calibration, options: StaticQuantOptions | None = None
) -> bytes:
    """The int8 QDQ model of float32 ``data``, activations calibrated on ``calibration``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    o = options or StaticQuantOptions()
    model = require_fp32(data, Precision.INT8)
    calibration.check(input_specs(model))

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds = calibration.feeds()

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    activations = QuantType.QInt8 if o.activation_type == "int8" else QuantType.QUInt8
    return _quantize(
        model,
        Precision.INT8,
        o.pre_process,
        "quantize_static",
        lambda source, target: quantize_static(
            source,
            target,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=o.per_channel,
            reduce_range=o.reduce_range,
            activation_type=activations,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=["CPUExecutionProvider"],
        ),
    )


def quantize_int8_dynamic(data: bytes, options: DynamicQuantOptions | None = None) -> bytes:
    """The dynamically quantized int8 model of float32 ``data`` (int8 weights, run-time activation scales)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    o = options or DynamicQuantOptions()
    model = require_fp32(data, Precision.INT8_DYNAMIC)
    return _quantize(
        model,
        Precision.INT8_DYNAMIC,
        o.pre_process,
        "quantize_dynamic",
        lambda source, target: quantize_dynamic(
            source,
            target,
            per_channel=o.per_channel,
            reduce_range=o.reduce_range,
            weight_type=QuantType.QInt8,
        ),
    )
