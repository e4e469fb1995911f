from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_UNSUPPORTED_OPERATOR: _ClassVar[ErrorReason]
    ERROR_REASON_CHECKSUM_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_TIMEOUT: _ClassVar[ErrorReason]
    ERROR_REASON_MEMORY_CAP: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_SETTINGS: _ClassVar[ErrorReason]
    ERROR_REASON_UNAUTHENTICATED: _ClassVar[ErrorReason]
    ERROR_REASON_QUEUE_FULL: _ClassVar[ErrorReason]
    ERROR_REASON_WORKER_CRASHED: _ClassVar[ErrorReason]
    ERROR_REASON_SHUTTING_DOWN: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_UPLOAD: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL: _ClassVar[ErrorReason]
    ERROR_REASON_AGENT_OVERLOADED: _ClassVar[ErrorReason]

class Method(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METHOD_UNSPECIFIED: _ClassVar[Method]
    METHOD_PLAIN: _ClassVar[Method]
    METHOD_PAIRED: _ClassVar[Method]

class GraphOptimization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRAPH_OPTIMIZATION_UNSPECIFIED: _ClassVar[GraphOptimization]
    GRAPH_OPTIMIZATION_DISABLE: _ClassVar[GraphOptimization]
    GRAPH_OPTIMIZATION_BASIC: _ClassVar[GraphOptimization]
    GRAPH_OPTIMIZATION_EXTENDED: _ClassVar[GraphOptimization]
    GRAPH_OPTIMIZATION_ALL: _ClassVar[GraphOptimization]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_MODEL_INVALID: ErrorReason
ERROR_REASON_UNSUPPORTED_OPERATOR: ErrorReason
ERROR_REASON_CHECKSUM_MISMATCH: ErrorReason
ERROR_REASON_MODEL_TOO_LARGE: ErrorReason
ERROR_REASON_MODEL_NOT_FOUND: ErrorReason
ERROR_REASON_TIMEOUT: ErrorReason
ERROR_REASON_MEMORY_CAP: ErrorReason
ERROR_REASON_INVALID_SETTINGS: ErrorReason
ERROR_REASON_UNAUTHENTICATED: ErrorReason
ERROR_REASON_QUEUE_FULL: ErrorReason
ERROR_REASON_WORKER_CRASHED: ErrorReason
ERROR_REASON_SHUTTING_DOWN: ErrorReason
ERROR_REASON_INVALID_UPLOAD: ErrorReason
ERROR_REASON_INTERNAL: ErrorReason
ERROR_REASON_AGENT_OVERLOADED: ErrorReason
METHOD_UNSPECIFIED: Method
METHOD_PLAIN: Method
METHOD_PAIRED: Method
GRAPH_OPTIMIZATION_UNSPECIFIED: GraphOptimization
GRAPH_OPTIMIZATION_DISABLE: GraphOptimization
GRAPH_OPTIMIZATION_BASIC: GraphOptimization
GRAPH_OPTIMIZATION_EXTENDED: GraphOptimization
GRAPH_OPTIMIZATION_ALL: GraphOptimization

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CpuInfo(_message.Message):
    __slots__ = ("architecture", "model", "physical_cores", "logical_cores", "freq_min_mhz", "freq_max_mhz", "freq_current_mhz", "usable_cores", "cpu_quota_cores")
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    FREQ_MIN_MHZ_FIELD_NUMBER: _ClassVar[int]
    FREQ_MAX_MHZ_FIELD_NUMBER: _ClassVar[int]
    FREQ_CURRENT_MHZ_FIELD_NUMBER: _ClassVar[int]
    USABLE_CORES_FIELD_NUMBER: _ClassVar[int]
    CPU_QUOTA_CORES_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    model: str
    physical_cores: int
    logical_cores: int
    freq_min_mhz: float
    freq_max_mhz: float
    freq_current_mhz: float
    usable_cores: int
    cpu_quota_cores: float
    def __init__(self, architecture: _Optional[str] = ..., model: _Optional[str] = ..., physical_cores: _Optional[int] = ..., logical_cores: _Optional[int] = ..., freq_min_mhz: _Optional[float] = ..., freq_max_mhz: _Optional[float] = ..., freq_current_mhz: _Optional[float] = ..., usable_cores: _Optional[int] = ..., cpu_quota_cores: _Optional[float] = ...) -> None: ...

class MemoryInfo(_message.Message):
    __slots__ = ("total_bytes", "available_bytes")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    available_bytes: int
    def __init__(self, total_bytes: _Optional[int] = ..., available_bytes: _Optional[int] = ...) -> None: ...

class OsInfo(_message.Message):
    __slots__ = ("system", "kernel", "distribution", "python_version")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    system: str
    kernel: str
    distribution: str
    python_version: str
    def __init__(self, system: _Optional[str] = ..., kernel: _Optional[str] = ..., distribution: _Optional[str] = ..., python_version: _Optional[str] = ...) -> None: ...

class RuntimeInfo(_message.Message):
    __slots__ = ("onnxruntime_version", "available_providers")
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    onnxruntime_version: str
    available_providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, onnxruntime_version: _Optional[str] = ..., available_providers: _Optional[_Iterable[str]] = ...) -> None: ...

class GpuInfo(_message.Message):
    __slots__ = ("name", "memory_bytes", "driver_version", "uuid")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    name: str
    memory_bytes: int
    driver_version: str
    uuid: str
    def __init__(self, name: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., driver_version: _Optional[str] = ..., uuid: _Optional[str] = ...) -> None: ...

class AgentLimits(_message.Message):
    __slots__ = ("max_model_bytes", "cache_budget_bytes", "max_timeout_s", "memory_cap_bytes", "max_queue", "auth_required", "tls")
    MAX_MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CAP_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    max_model_bytes: int
    cache_budget_bytes: int
    max_timeout_s: float
    memory_cap_bytes: int
    max_queue: int
    auth_required: bool
    tls: bool
    def __init__(self, max_model_bytes: _Optional[int] = ..., cache_budget_bytes: _Optional[int] = ..., max_timeout_s: _Optional[float] = ..., memory_cap_bytes: _Optional[int] = ..., max_queue: _Optional[int] = ..., auth_required: _Optional[bool] = ..., tls: _Optional[bool] = ...) -> None: ...

class DeviceDescription(_message.Message):
    __slots__ = ("agent_version", "hostname", "host_fingerprint", "cpu", "memory", "os", "board_model", "runtime", "gpus", "limits")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    BOARD_MODEL_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    hostname: str
    host_fingerprint: str
    cpu: CpuInfo
    memory: MemoryInfo
    os: OsInfo
    board_model: str
    runtime: RuntimeInfo
    gpus: _containers.RepeatedCompositeFieldContainer[GpuInfo]
    limits: AgentLimits
    def __init__(self, agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., host_fingerprint: _Optional[str] = ..., cpu: _Optional[_Union[CpuInfo, _Mapping]] = ..., memory: _Optional[_Union[MemoryInfo, _Mapping]] = ..., os: _Optional[_Union[OsInfo, _Mapping]] = ..., board_model: _Optional[str] = ..., runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., gpus: _Optional[_Iterable[_Union[GpuInfo, _Mapping]]] = ..., limits: _Optional[_Union[AgentLimits, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceState(_message.Message):
    __slots__ = ("timestamp", "freq_current_mhz", "freq_max_mhz", "temperature_available", "temperature_c", "load_1m", "cpu_percent", "memory_available_bytes", "throttled", "others_cpu_percent")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FREQ_CURRENT_MHZ_FIELD_NUMBER: _ClassVar[int]
    FREQ_MAX_MHZ_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    LOAD_1M_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    OTHERS_CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    timestamp: float
    freq_current_mhz: float
    freq_max_mhz: float
    temperature_available: bool
    temperature_c: float
    load_1m: float
    cpu_percent: float
    memory_available_bytes: int
    throttled: bool
    others_cpu_percent: float
    def __init__(self, timestamp: _Optional[float] = ..., freq_current_mhz: _Optional[float] = ..., freq_max_mhz: _Optional[float] = ..., temperature_available: _Optional[bool] = ..., temperature_c: _Optional[float] = ..., load_1m: _Optional[float] = ..., cpu_percent: _Optional[float] = ..., memory_available_bytes: _Optional[int] = ..., throttled: _Optional[bool] = ..., others_cpu_percent: _Optional[float] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("busy", "queue_length", "max_queue", "state", "cache_bytes", "cached_models", "uptime_s", "running_model_sha256", "agent_version", "serving")
    BUSY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHED_MODELS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    RUNNING_MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    busy: bool
    queue_length: int
    max_queue: int
    state: DeviceState
    cache_bytes: int
    cached_models: int
    uptime_s: float
    running_model_sha256: str
    agent_version: str
    serving: bool
    def __init__(self, busy: _Optional[bool] = ..., queue_length: _Optional[int] = ..., max_queue: _Optional[int] = ..., state: _Optional[_Union[DeviceState, _Mapping]] = ..., cache_bytes: _Optional[int] = ..., cached_models: _Optional[int] = ..., uptime_s: _Optional[float] = ..., running_model_sha256: _Optional[str] = ..., agent_version: _Optional[str] = ..., serving: _Optional[bool] = ...) -> None: ...

class HasModelsRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class HasModelsResponse(_message.Message):
    __slots__ = ("present", "missing")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    present: _containers.RepeatedScalarFieldContainer[str]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, present: _Optional[_Iterable[str]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("sha256", "total_bytes", "data")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    total_bytes: int
    data: bytes
    def __init__(self, sha256: _Optional[str] = ..., total_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("sha256", "size_bytes", "already_present")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    already_present: bool
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., already_present: _Optional[bool] = ...) -> None: ...

class InputShape(_message.Message):
    __slots__ = ("name", "dims")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dims: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dims: _Optional[_Iterable[int]] = ...) -> None: ...

class BenchmarkSettings(_message.Message):
    __slots__ = ("warmup_runs", "min_runs", "min_duration_s", "max_runs", "max_duration_s", "intra_op_threads", "inter_op_threads", "providers", "graph_optimization", "input_shapes", "seed", "method", "timeout_s", "memory_cap_bytes")
    WARMUP_RUNS_FIELD_NUMBER: _ClassVar[int]
    MIN_RUNS_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    INTER_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_OPTIMIZATION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CAP_BYTES_FIELD_NUMBER: _ClassVar[int]
    warmup_runs: int
    min_runs: int
    min_duration_s: float
    max_runs: int
    max_duration_s: float
    intra_op_threads: int
    inter_op_threads: int
    providers: _containers.RepeatedScalarFieldContainer[str]
    graph_optimization: GraphOptimization
    input_shapes: _containers.RepeatedCompositeFieldContainer[InputShape]
    seed: int
    method: Method
    timeout_s: float
    memory_cap_bytes: int
    def __init__(self, warmup_runs: _Optional[int] = ..., min_runs: _Optional[int] = ..., min_duration_s: _Optional[float] = ..., max_runs: _Optional[int] = ..., max_duration_s: _Optional[float] = ..., intra_op_threads: _Optional[int] = ..., inter_op_threads: _Optional[int] = ..., providers: _Optional[_Iterable[str]] = ..., graph_optimization: _Optional[_Union[GraphOptimization, str]] = ..., input_shapes: _Optional[_Iterable[_Union[InputShape, _Mapping]]] = ..., seed: _Optional[int] = ..., method: _Optional[_Union[Method, str]] = ..., timeout_s: _Optional[float] = ..., memory_cap_bytes: _Optional[int] = ...) -> None: ...

class BenchmarkRequest(_message.Message):
    __slots__ = ("model_sha256", "settings")
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    model_sha256: str
    settings: BenchmarkSettings
    def __init__(self, model_sha256: _Optional[str] = ..., settings: _Optional[_Union[BenchmarkSettings, _Mapping]] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("median_ms", "mean_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "cv")
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    STD_MS_FIELD_NUMBER: _ClassVar[int]
    CV_FIELD_NUMBER: _ClassVar[int]
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    cv: float
    def __init__(self, median_ms: _Optional[float] = ..., mean_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., cv: _Optional[float] = ...) -> None: ...

class PairedResult(_message.Message):
    __slots__ = ("reference_name", "reference_sha256", "reference_samples_ms", "ratios", "ratio_median", "reference_calibrated_ms", "reference_calibrated_at", "latency_ms", "ratio_cv")
    REFERENCE_NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SAMPLES_MS_FIELD_NUMBER: _ClassVar[int]
    RATIOS_FIELD_NUMBER: _ClassVar[int]
    RATIO_MEDIAN_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_CALIBRATED_MS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_CALIBRATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    RATIO_CV_FIELD_NUMBER: _ClassVar[int]
    reference_name: str
    reference_sha256: str
    reference_samples_ms: _containers.RepeatedScalarFieldContainer[float]
    ratios: _containers.RepeatedScalarFieldContainer[float]
    ratio_median: float
    reference_calibrated_ms: float
    reference_calibrated_at: float
    latency_ms: float
    ratio_cv: float
    def __init__(self, reference_name: _Optional[str] = ..., reference_sha256: _Optional[str] = ..., reference_samples_ms: _Optional[_Iterable[float]] = ..., ratios: _Optional[_Iterable[float]] = ..., ratio_median: _Optional[float] = ..., reference_calibrated_ms: _Optional[float] = ..., reference_calibrated_at: _Optional[float] = ..., latency_ms: _Optional[float] = ..., ratio_cv: _Optional[float] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("name", "dims", "element_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dims: _containers.RepeatedScalarFieldContainer[int]
    element_type: str
    def __init__(self, name: _Optional[str] = ..., dims: _Optional[_Iterable[int]] = ..., element_type: _Optional[str] = ...) -> None: ...

class BenchmarkResult(_message.Message):
    __slots__ = ("model_sha256", "settings", "samples_ms", "stats", "session_create_ms", "first_run_ms", "peak_rss_bytes", "provider", "state_before", "state_after", "warnings", "paired", "agent_version", "onnxruntime_version", "started_at", "wall_s", "inputs", "host_fingerprint")
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_MS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    SESSION_CREATE_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_RUN_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATE_AFTER_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    PAIRED_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    HOST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    model_sha256: str
    settings: BenchmarkSettings
    samples_ms: _containers.RepeatedScalarFieldContainer[float]
    stats: LatencyStats
    session_create_ms: float
    first_run_ms: float
    peak_rss_bytes: int
    provider: str
    state_before: DeviceState
    state_after: DeviceState
    warnings: _containers.RepeatedScalarFieldContainer[str]
    paired: PairedResult
    agent_version: str
    onnxruntime_version: str
    started_at: float
    wall_s: float
    inputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    host_fingerprint: str
    def __init__(self, model_sha256: _Optional[str] = ..., settings: _Optional[_Union[BenchmarkSettings, _Mapping]] = ..., samples_ms: _Optional[_Iterable[float]] = ..., stats: _Optional[_Union[LatencyStats, _Mapping]] = ..., session_create_ms: _Optional[float] = ..., first_run_ms: _Optional[float] = ..., peak_rss_bytes: _Optional[int] = ..., provider: _Optional[str] = ..., state_before: _Optional[_Union[DeviceState, _Mapping]] = ..., state_after: _Optional[_Union[DeviceState, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., paired: _Optional[_Union[PairedResult, _Mapping]] = ..., agent_version: _Optional[str] = ..., onnxruntime_version: _Optional[str] = ..., started_at: _Optional[float] = ..., wall_s: _Optional[float] = ..., inputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., host_fingerprint: _Optional[str] = ...) -> None: ...
