"""Model compression: precision variants of an ONNX model, their detection and their accuracy.

Made with onnxruntime's own tools, as pure functions of bytes (the same
input and calibration give the same bytes)::

    from fleetnas.controller.compress import make_variant, describe_model, accuracy_drop
    int8 = make_variant(fp32_bytes, "int8", calibration="data.npz")  # or a Dataset, or None
    describe_model(int8.onnx_bytes).precision.precision            # Precision.INT8
    accuracy_drop(fp32_bytes, int8.onnx_bytes, dataset).drop       # measured on validation data

Precisions: ``fp32``, ``fp16``, ``int8`` (static QDQ, per-channel weights,
calibrated activations), ``int8-dynamic``; ``mixed`` is only detected.
Importing this package imports onnx and numpy, and the accuracy package
(torch) for datasets; onnxruntime is imported when a tool runs. See
``docs/compress.md``.
"""

from __future__ import annotations

from fleetnas.controller.compress._accuracy import (
    AccuracyDrop,
    DeployedAccuracy,
    accuracy_drop,
    evaluate_onnx,
    model_logits,
)
from fleetnas.controller.compress._calibration import (
    Calibration,
    CalibrationSource,
    calibration_for,
    calibration_from_arrays,
    calibration_from_dataset,
    calibration_from_npz,
    random_calibration,
)
from fleetnas.controller.compress._detect import (
    DetectedPrecision,
    ModelInfo,
    PrecisionEvidence,
    describe_model,
    detect_precision,
)
from fleetnas.controller.compress._errors import (
    CalibrationError,
    CompressError,
    EvaluationError,
    InvalidModel,
    NotCompressible,
    RandomCalibrationWarning,
    UnknownPrecision,
)
from fleetnas.controller.compress._fp16 import Fp16Options, convert_fp16
from fleetnas.controller.compress._graph import TensorSpec
from fleetnas.controller.compress._identity import ModelIdentity, model_identity
from fleetnas.controller.compress._inputs import DatasetInputs
from fleetnas.controller.compress._precision import (
    GENE_PRECISIONS,
    Precision,
    parse_precision,
    parse_precisions,
)
from fleetnas.controller.compress._quantize import (
    DynamicQuantOptions,
    StaticQuantOptions,
    quantize_int8_dynamic,
    quantize_int8_static,
)
from fleetnas.controller.compress._variants import (
    CONVERTERS,
    FORMAT_VERSION,
    FP32Options,
    Variant,
    make_variant,
    variant_description,
)

__all__ = [
    "CONVERTERS",
    "FORMAT_VERSION",
    "GENE_PRECISIONS",
    "AccuracyDrop",
    "Calibration",
    "CalibrationError",
    "CalibrationSource",
    "CompressError",
    "DatasetInputs",
    "DeployedAccuracy",
    "DetectedPrecision",
    "DynamicQuantOptions",
    "EvaluationError",
    "FP32Options",
    "Fp16Options",
    "InvalidModel",
    "ModelIdentity",
    "ModelInfo",
    "NotCompressible",
    "Precision",
    "PrecisionEvidence",
    "RandomCalibrationWarning",
    "StaticQuantOptions",
    "TensorSpec",
    "UnknownPrecision",
    "Variant",
    "accuracy_drop",
    "calibration_for",
    "calibration_from_arrays",
    "calibration_from_dataset",
    "calibration_from_npz",
    "convert_fp16",
    "describe_model",
    "detect_precision",
    "evaluate_onnx",
    "make_variant",
    "model_identity",
    "model_logits",
    "parse_precision",
    "parse_precisions",
    "quantize_int8_dynamic",
    "quantize_int8_static",
    "random_calibration",
    "variant_description",
]
