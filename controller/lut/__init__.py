"""Per-device latency lookup tables (LUTs) and the predictor built on them.

A LUT holds the latency of every distinct block of a search space, measured
once on one device with one set of benchmark settings; a network's
prediction is the sum of its blocks' entries, calibrated per device by a
straight line fitted on a few end-to-end measurements. See ``docs/lut.md``.

Public API::

    report = build_lut(space, "pi4-a", settings, db=db, scheduler=scheduler)
    int8 = build_lut(space, "pi4-a", settings, db=db, scheduler=scheduler, precision="int8")
    calibrate_lut(report.lut, db=db, scheduler=scheduler, k=10)
    predictor = LatencyPredictor.from_db(db, space, "pi4-a", report.lut.settings_hash)
    predictor.predict(arch)                       # ms
    result = evaluate_lut(lut, db=db, scheduler=scheduler, n=100, plot_path="eval.png")
    check_lut(lut, db=db, scheduler=scheduler, n=5).stale
    export_lut(db, lut)                           # profiles/luts/<device>/<space>-<hash>.json|csv
    import_lut(db, "profiles/luts/pi4-a/mbv3-0123456789abcdef.json")
"""

from fleetnas.controller.lut._build import (
    DEFAULT_REMEASURE_ATTEMPTS,
    BuildReport,
    Remeasured,
    build_lut,
    distinct_blocks,
    export_blocks,
    remeasure_lut,
)
from fleetnas.controller.lut._calibration import (
    MIN_CALIBRATION_ARCHS,
    Calibration,
    fit_calibration,
)
from fleetnas.controller.lut._errors import (
    AmbiguousLut,
    CalibrationError,
    LutError,
    LutFormatError,
    LutMismatch,
    LutNotFound,
    MeasurementFailed,
    MissingBlock,
    PrecisionUnsupported,
)
from fleetnas.controller.lut._eval import (
    DEFAULT_CALIBRATION_N,
    DEFAULT_CHECK_N,
    DEFAULT_EVAL_N,
    DEFAULT_STALE_THRESHOLD,
    ArchMeasurement,
    CheckResult,
    EvalResult,
    EvalRow,
    calibrate_lut,
    check_lut,
    evaluate_lut,
    lut_request,
    measure_archs,
    sample_archs,
    space_of,
)
from fleetnas.controller.lut._io import (
    DEFAULT_EXPORT_DIR,
    FORMAT,
    FORMAT_VERSION,
    ImportResult,
    LutFile,
    export_lut,
    export_paths,
    import_lut,
    lut_document,
    read_lut_file,
)
from fleetnas.controller.lut._metrics import Accuracy, accuracy, kendall_tau_b
from fleetnas.controller.lut._precision import PrecisionConverter
from fleetnas.controller.lut._predictor import LatencyPredictor
from fleetnas.controller.lut._progress import LutProgress, ProgressCallback
from fleetnas.controller.lut._refresh import (
    RefreshedEntry,
    RefreshReport,
    entry_noise,
    refresh_lut,
)
from fleetnas.controller.lut._robust import (
    DEFAULT_LUT_STATISTIC,
    STATISTICS,
    cli_name,
    entry_latency,
    from_cli_name,
    measurement_samples,
    robust_latency,
    sample_cv,
)
from fleetnas.controller.lut._settings import is_empty_request, settings_mismatches
from fleetnas.controller.lut._stats import (
    DEFAULT_STATS_N,
    PERCENTILES,
    SUGGESTED_BOUNDS,
    Distribution,
    NoLatencyData,
    SpaceStats,
    device_predictor,
    lut_stats,
    measured_stats,
)
from fleetnas.controller.lut._store import (
    BLOCK_ARCH_PREFIX,
    DEFAULT_LUT_PRECISION,
    LutEntry,
    LutInfo,
    LutReport,
    LutStore,
    block_variant_arch,
    canonical_precision,
)

__all__ = [
    "DEFAULT_LUT_PRECISION",
    "PrecisionConverter",
    "PrecisionUnsupported",
    "block_variant_arch",
    "canonical_precision",
    "RefreshReport",
    "RefreshedEntry",
    "entry_noise",
    "refresh_lut",
    "DEFAULT_LUT_STATISTIC",
    "cli_name",
    "entry_latency",
    "from_cli_name",
    "measurement_samples",
    "measured_stats",
    "lut_stats",
    "device_predictor",
    "SpaceStats",
    "NoLatencyData",
    "Distribution",
    "SUGGESTED_BOUNDS",
    "PERCENTILES",
    "DEFAULT_STATS_N",
    "BLOCK_ARCH_PREFIX",
    "DEFAULT_CALIBRATION_N",
    "DEFAULT_CHECK_N",
    "DEFAULT_EVAL_N",
    "DEFAULT_EXPORT_DIR",
    "DEFAULT_STALE_THRESHOLD",
    "FORMAT",
    "FORMAT_VERSION",
    "DEFAULT_REMEASURE_ATTEMPTS",
    "MIN_CALIBRATION_ARCHS",
    "STATISTICS",
    "Accuracy",
    "AmbiguousLut",
    "ArchMeasurement",
    "BuildReport",
    "Calibration",
    "CalibrationError",
    "CheckResult",
    "EvalResult",
    "EvalRow",
    "ImportResult",
    "LatencyPredictor",
    "LutEntry",
    "LutError",
    "LutFile",
    "LutFormatError",
    "LutInfo",
    "LutMismatch",
    "LutNotFound",
    "LutProgress",
    "LutReport",
    "LutStore",
    "MeasurementFailed",
    "MissingBlock",
    "ProgressCallback",
    "Remeasured",
    "accuracy",
    "build_lut",
    "calibrate_lut",
    "check_lut",
    "distinct_blocks",
    "evaluate_lut",
    "export_blocks",
    "export_lut",
    "export_paths",
    "fit_calibration",
    "import_lut",
    "is_empty_request",
    "kendall_tau_b",
    "lut_document",
    "lut_request",
    "measure_archs",
    "read_lut_file",
    "remeasure_lut",
    "robust_latency",
    "sample_archs",
    "sample_cv",
    "settings_mismatches",
    "space_of",
]
