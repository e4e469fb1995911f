"""Latency predictors that hold on shared hosts, multi-threaded devices and new devices.

Three parts, each usable alone (see ``docs/predict.md``):

* :mod:`._protocol`, **measuring on a shared host**: models measured in
  interleaved rounds of short benchmarks, a robust low statistic per model,
  re-measured until it settles, each result with its own uncertainty::

      report = measure_robust({"a": ref_a, "b": ref_b}, "pi4-a", request,
                              db=db, scheduler=scheduler)
      report.results["a"].latency_ms, report.results["a"].spread

* :mod:`._kernels` and :mod:`._kernel_lut`, **fusion-aware kernels**: the
  nodes onnxruntime actually executes at the device's optimisation level,
  each measured once alone, a net predicted as their sum plus a fitted
  overhead::

      build = build_kernel_lut(space, "pi4-a", request, db=db, scheduler=scheduler)
      lut = build.lut.calibrated(nets, measured_ms)
      KernelPredictor(space, lut).predict(arch)
      KernelLutStore(db).save(space, lut)  # what `fleetnas search` predicts with

* :mod:`._transfer`, **a new device from few measurements**: a HELP-style
  reference set measured on the new device, and a model over arch features
  plus a device embedding fitted against every other device in the cost DB
  (the API of ``fleetnas lut transfer --device NEW --n 20``)::

      result = transfer(db, space, "new-pi", 20, scheduler=scheduler)
      result.predictor.predict(arch)
      evaluate_transfer(result, db, space, "new-pi", 30, scheduler=scheduler).accuracy
"""

from fleetnas.controller.predict._descriptors import FEATURES, DescriptorError, descriptor
from fleetnas.controller.predict._kernel_fit import (
    KERNEL_CALIBRATION_PURPOSE,
    KERNEL_EVAL_PURPOSE,
    KernelLutFit,
    fit_kernel_lut,
)
from fleetnas.controller.predict._kernel_lut import (
    KERNEL_ARCH_PREFIX,
    NULL_KEY,
    KernelCache,
    KernelEntry,
    KernelLut,
    KernelLutBuild,
    KernelPredictor,
    MissingKernel,
    arch_kernels,
    build_kernel_lut,
    cover_archs,
)
from fleetnas.controller.predict._kernel_store import (
    KernelLutNotFound,
    KernelLutStore,
    KernelLutUnusable,
    StoredKernelLut,
    stored_kernel_predictor,
)
from fleetnas.controller.predict._kernels import (
    LEVEL_NAMES,
    Kernel,
    KernelExtractionError,
    NetKernels,
    TensorSpec,
    check_kernel_model,
    extract_kernels,
    kernel_model,
    null_model,
)
from fleetnas.controller.predict._kernels import environment as extraction_environment
from fleetnas.controller.predict._protocol import (
    DEFAULT_STATISTIC,
    STATISTICS,
    Progress,
    Protocol,
    ProtocolReport,
    RobustLatency,
    measure_robust,
    round_samples,
)
from fleetnas.controller.predict._transfer import (
    DEFAULT_MIN_SOURCE_ARCHS,
    Descriptors,
    Source,
    TransferError,
    TransferFit,
    TransferPredictor,
    TransferResult,
    fit_predictor,
    fit_source,
    fit_transfer,
    load_sources,
    measured_archs,
    nnls,
    reference_archs,
    transfer,
)
from fleetnas.controller.predict._transfer_eval import (
    EVAL_PURPOSE,
    TransferEval,
    evaluate_transfer,
)
from fleetnas.controller.predict._transfer_store import (
    StoredTransfer,
    TransferFitNotFound,
    TransferStore,
    predictor_from_params,
    transfer_params,
)

__all__ = [
    "DEFAULT_MIN_SOURCE_ARCHS",
    "EVAL_PURPOSE",
    "TransferEval",
    "evaluate_transfer",
    "DEFAULT_STATISTIC",
    "FEATURES",
    "KERNEL_ARCH_PREFIX",
    "KERNEL_CALIBRATION_PURPOSE",
    "KERNEL_EVAL_PURPOSE",
    "KernelLutFit",
    "fit_kernel_lut",
    "LEVEL_NAMES",
    "NULL_KEY",
    "STATISTICS",
    "DescriptorError",
    "Descriptors",
    "Kernel",
    "KernelCache",
    "KernelEntry",
    "KernelExtractionError",
    "KernelLut",
    "KernelLutBuild",
    "KernelLutNotFound",
    "KernelLutStore",
    "KernelLutUnusable",
    "StoredKernelLut",
    "stored_kernel_predictor",
    "extraction_environment",
    "KernelPredictor",
    "MissingKernel",
    "NetKernels",
    "Progress",
    "Protocol",
    "ProtocolReport",
    "RobustLatency",
    "Source",
    "TensorSpec",
    "TransferError",
    "TransferFit",
    "TransferPredictor",
    "TransferResult",
    "StoredTransfer",
    "TransferFitNotFound",
    "TransferStore",
    "predictor_from_params",
    "transfer_params",
    "arch_kernels",
    "build_kernel_lut",
    "check_kernel_model",
    "cover_archs",
    "descriptor",
    "extract_kernels",
    "fit_predictor",
    "fit_source",
    "fit_transfer",
    "kernel_model",
    "load_sources",
    "measure_robust",
    "measured_archs",
    "nnls",
    "null_model",
    "reference_archs",
    "round_samples",
    "transfer",
]
