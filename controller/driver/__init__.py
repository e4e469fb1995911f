"""The search driver: a multi-objective search against a live fleet, a LUT, or both.

It asks the ask/tell engine (:mod:`fleetnas.controller.search`) for
candidates, gets their latency on each target from measurements (through the
scheduler and the cost DB), LUT predictions, or both (hybrid: predict all,
measure what could change the Pareto front), their accuracy from an
estimator, tells the engine and stores every step in the cost DB so that a
killed search resumes where it was::

    from fleetnas.controller.driver import (
        SchedulerMeasurer, SearchConfig, SearchDriver, Target)

    config = SearchConfig.build(
        space="nb201", targets=[Target.device_class("pi4", {"intra_op_threads": 1})],
        objectives=["accuracy"], constraints=["latency[pi4] <= 30 ms"],
        accuracy="naswot", mode="hybrid", budget=200, seed=0)
    driver = SearchDriver.create(config, db=db, measurer=SchedulerMeasurer(scheduler, db))
    result = driver.run()
    SearchDriver.resume(result.search_id, db=db, measurer=...).run()   # after a kill

See ``docs/search.md``. Only the names in ``__all__`` are API.
"""

from __future__ import annotations

from fleetnas.controller.driver._accuracy import (
    ACCURACY_GROUP,
    ESTIMATOR_KINDS,
    EstimatorKind,
    accuracy_label,
    check_accuracy_spec,
    estimator_usages,
    is_expensive,
    make_estimator,
)
from fleetnas.controller.driver._candidates import CandidateState
from fleetnas.controller.driver._compare_specs import (
    SpecComparison,
    compare_accuracy_specs,
    train_spec,
)
from fleetnas.controller.driver._config import (
    MODES,
    SETTING_KEYS,
    HybridOptions,
    SearchConfig,
    Target,
    parse_target,
    strategy_from_spec,
    strategy_spec,
)
from fleetnas.controller.driver._deploy import (
    DEPLOYED_NOTE,
    UNKNOWN_NOTE,
    DeployedModels,
    accuracy_note,
    calibration_source,
    search_space,
)
from fleetnas.controller.driver._deployed_accuracy import DeployedScorer, deployed_accuracy_for
from fleetnas.controller.driver._driver import (
    STOP_REASONS,
    ProgressCallback,
    SearchDriver,
    SearchProgress,
    SearchResult,
)
from fleetnas.controller.driver._errors import (
    DriverError,
    SearchAborted,
    SearchBusy,
    SearchConfigError,
    SearchNotFound,
)
from fleetnas.controller.driver._evaluation import Evaluation
from fleetnas.controller.driver._hybrid import Hybrid
from fleetnas.controller.driver._kernel_luts import (
    find_kernel_luts,
    kernel_lut_predictors,
    stored_kernel_luts,
)
from fleetnas.controller.driver._luts import find_lut_predictor, find_luts, target_devices
from fleetnas.controller.driver._measure import (
    PERMANENT_ERRORS,
    CallableMeasurer,
    CandidateMeasurement,
    Measurer,
    MeasureRequest,
    SchedulerMeasurer,
    TargetResult,
)
from fleetnas.controller.driver._percentile import (
    ResolvedBound,
    is_percentile_bound,
    resolve_percentiles,
)
from fleetnas.controller.driver._plan import SearchPlan, TargetPlan, plan_search
from fleetnas.controller.driver._predict import (
    LutValuePredictor,
    Prediction,
    SurrogateValuePredictor,
    ValuePredictor,
)
from fleetnas.controller.driver._predict_fixed import (
    FixedFitValuePredictor,
    FixedPredictor,
    StoredPredictor,
)
from fleetnas.controller.driver._remote import (
    EVALUATIONS_FILE,
    EXECUTOR_KINDS,
    ExecutorOptions,
    RemoteEstimates,
    open_executor,
    remote_task_spec,
)
from fleetnas.controller.driver._resume import StoredSearch, load_search, trial_records
from fleetnas.controller.driver._select import constraint_dominates, could_enter_front
from fleetnas.controller.driver._source import (
    LATENCY_SOURCES,
    SOURCE_GROUP,
    LatencySource,
    SourceSetup,
    UnknownLatencySource,
    latency_source_class,
)
from fleetnas.controller.driver._sources import LutPredicted, Measured, PredictingSource
from fleetnas.controller.driver._store import (
    CandidateRecord,
    Counters,
    SearchRecord,
    SearchStore,
)
from fleetnas.controller.driver._surrogate import RidgeSurrogate, arch_features
from fleetnas.controller.driver._transfers import (
    find_transfers,
    stored_transfers,
    transfer_predictors,
)
from fleetnas.controller.driver._unknown import FP32_SCORE, UNKNOWN, blind_accuracy, unknown_of

__all__ = [
    "ACCURACY_GROUP",
    "ESTIMATOR_KINDS",
    "EVALUATIONS_FILE",
    "EXECUTOR_KINDS",
    "LATENCY_SOURCES",
    "SOURCE_GROUP",
    "MODES",
    "PERMANENT_ERRORS",
    "SETTING_KEYS",
    "STOP_REASONS",
    "CallableMeasurer",
    "CandidateMeasurement",
    "CandidateRecord",
    "CandidateState",
    "DEPLOYED_NOTE",
    "FP32_SCORE",
    "UNKNOWN",
    "UNKNOWN_NOTE",
    "DeployedModels",
    "DeployedScorer",
    "Counters",
    "DriverError",
    "EstimatorKind",
    "Evaluation",
    "ExecutorOptions",
    "Hybrid",
    "HybridOptions",
    "LatencySource",
    "LutPredicted",
    "LutValuePredictor",
    "MeasureRequest",
    "Measured",
    "Measurer",
    "PredictingSource",
    "Prediction",
    "ProgressCallback",
    "RemoteEstimates",
    "ResolvedBound",
    "RidgeSurrogate",
    "SchedulerMeasurer",
    "SearchAborted",
    "SearchBusy",
    "SearchConfig",
    "SearchConfigError",
    "SearchDriver",
    "SearchNotFound",
    "SearchPlan",
    "SearchProgress",
    "SearchRecord",
    "SearchResult",
    "SearchStore",
    "SourceSetup",
    "SpecComparison",
    "StoredSearch",
    "SurrogateValuePredictor",
    "Target",
    "TargetPlan",
    "UnknownLatencySource",
    "TargetResult",
    "ValuePredictor",
    "accuracy_note",
    "blind_accuracy",
    "deployed_accuracy_for",
    "unknown_of",
    "arch_features",
    "calibration_source",
    "check_accuracy_spec",
    "compare_accuracy_specs",
    "train_spec",
    "constraint_dominates",
    "could_enter_front",
    "estimator_usages",
    "find_lut_predictor",
    "find_luts",
    "find_transfers",
    "stored_transfers",
    "transfer_predictors",
    "FixedFitValuePredictor",
    "FixedPredictor",
    "StoredPredictor",
    "find_kernel_luts",
    "kernel_lut_predictors",
    "stored_kernel_luts",
    "accuracy_label",
    "is_expensive",
    "is_percentile_bound",
    "latency_source_class",
    "load_search",
    "make_estimator",
    "open_executor",
    "parse_target",
    "plan_search",
    "remote_task_spec",
    "resolve_percentiles",
    "search_space",
    "strategy_from_spec",
    "strategy_spec",
    "target_devices",
    "trial_records",
]
