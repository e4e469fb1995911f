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
    ERROR_REASON_ADB_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_DEVICE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_DEVICE_UNAUTHORIZED: _ClassVar[ErrorReason]
    ERROR_REASON_DEVICE_OFFLINE: _ClassVar[ErrorReason]
    ERROR_REASON_DEVICE_LOST: _ClassVar[ErrorReason]
    ERROR_REASON_ADB_FAILED: _ClassVar[ErrorReason]
    ERROR_REASON_PUSH_FAILED: _ClassVar[ErrorReason]
    ERROR_REASON_BINARY_MISSING: _ClassVar[ErrorReason]
    ERROR_REASON_BINARY_NOT_EXECUTABLE: _ClassVar[ErrorReason]
    ERROR_REASON_PHONE_BUSY: _ClassVar[ErrorReason]
    ERROR_REASON_TOOL_OUTPUT_UNREADABLE: _ClassVar[ErrorReason]

class ModelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_FORMAT_UNSPECIFIED: _ClassVar[ModelFormat]
    MODEL_FORMAT_ONNX: _ClassVar[ModelFormat]
    MODEL_FORMAT_TFLITE: _ClassVar[ModelFormat]
    MODEL_FORMAT_UNRECOGNIZED: _ClassVar[ModelFormat]

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

class ProfileSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROFILE_SOURCE_UNSPECIFIED: _ClassVar[ProfileSource]
    PROFILE_SOURCE_ORT_PROFILING: _ClassVar[ProfileSource]
    PROFILE_SOURCE_LITERT_OP_PROFILING: _ClassVar[ProfileSource]
    PROFILE_SOURCE_BENCHMARK_MODEL: _ClassVar[ProfileSource]

class SamplesSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLES_SOURCE_UNSPECIFIED: _ClassVar[SamplesSource]
    SAMPLES_SOURCE_RAW: _ClassVar[SamplesSource]
    SAMPLES_SOURCE_TOOL_STATISTICS: _ClassVar[SamplesSource]
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
ERROR_REASON_ADB_NOT_FOUND: ErrorReason
ERROR_REASON_DEVICE_NOT_FOUND: ErrorReason
ERROR_REASON_DEVICE_UNAUTHORIZED: ErrorReason
ERROR_REASON_DEVICE_OFFLINE: ErrorReason
ERROR_REASON_DEVICE_LOST: ErrorReason
ERROR_REASON_ADB_FAILED: ErrorReason
ERROR_REASON_PUSH_FAILED: ErrorReason
ERROR_REASON_BINARY_MISSING: ErrorReason
ERROR_REASON_BINARY_NOT_EXECUTABLE: ErrorReason
ERROR_REASON_PHONE_BUSY: ErrorReason
ERROR_REASON_TOOL_OUTPUT_UNREADABLE: ErrorReason
MODEL_FORMAT_UNSPECIFIED: ModelFormat
MODEL_FORMAT_ONNX: ModelFormat
MODEL_FORMAT_TFLITE: ModelFormat
MODEL_FORMAT_UNRECOGNIZED: ModelFormat
METHOD_UNSPECIFIED: Method
METHOD_PLAIN: Method
METHOD_PAIRED: Method
GRAPH_OPTIMIZATION_UNSPECIFIED: GraphOptimization
GRAPH_OPTIMIZATION_DISABLE: GraphOptimization
GRAPH_OPTIMIZATION_BASIC: GraphOptimization
GRAPH_OPTIMIZATION_EXTENDED: GraphOptimization
GRAPH_OPTIMIZATION_ALL: GraphOptimization
PROFILE_SOURCE_UNSPECIFIED: ProfileSource
PROFILE_SOURCE_ORT_PROFILING: ProfileSource
PROFILE_SOURCE_LITERT_OP_PROFILING: ProfileSource
PROFILE_SOURCE_BENCHMARK_MODEL: ProfileSource
SAMPLES_SOURCE_UNSPECIFIED: SamplesSource
SAMPLES_SOURCE_RAW: SamplesSource
SAMPLES_SOURCE_TOOL_STATISTICS: SamplesSource

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
    __slots__ = ("onnxruntime_version", "available_providers", "name", "version", "accelerators", "formats", "available", "reason")
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    onnxruntime_version: str
    available_providers: _containers.RepeatedScalarFieldContainer[str]
    name: str
    version: str
    accelerators: _containers.RepeatedScalarFieldContainer[str]
    formats: _containers.RepeatedScalarFieldContainer[ModelFormat]
    available: bool
    reason: str
    def __init__(self, onnxruntime_version: _Optional[str] = ..., available_providers: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., accelerators: _Optional[_Iterable[str]] = ..., formats: _Optional[_Iterable[_Union[ModelFormat, str]]] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class GpuInfo(_message.Message):
    __slots__ = ("name", "memory_bytes", "driver_version", "uuid", "index", "compute_capability", "cuda_driver_version", "mig_mode", "power_limit_w", "slowdown_temperature_c", "energy_method", "unreadable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    CUDA_DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIG_MODE_FIELD_NUMBER: _ClassVar[int]
    POWER_LIMIT_W_FIELD_NUMBER: _ClassVar[int]
    SLOWDOWN_TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METHOD_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    memory_bytes: int
    driver_version: str
    uuid: str
    index: int
    compute_capability: str
    cuda_driver_version: str
    mig_mode: str
    power_limit_w: float
    slowdown_temperature_c: float
    energy_method: str
    unreadable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., driver_version: _Optional[str] = ..., uuid: _Optional[str] = ..., index: _Optional[int] = ..., compute_capability: _Optional[str] = ..., cuda_driver_version: _Optional[str] = ..., mig_mode: _Optional[str] = ..., power_limit_w: _Optional[float] = ..., slowdown_temperature_c: _Optional[float] = ..., energy_method: _Optional[str] = ..., unreadable: _Optional[_Iterable[str]] = ...) -> None: ...

class JetsonPowerMode(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class JetsonInfo(_message.Message):
    __slots__ = ("board", "power_modes", "default_power_mode", "gpu_devfreq", "rails", "energy_scope", "unreadable")
    BOARD_FIELD_NUMBER: _ClassVar[int]
    POWER_MODES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POWER_MODE_FIELD_NUMBER: _ClassVar[int]
    GPU_DEVFREQ_FIELD_NUMBER: _ClassVar[int]
    RAILS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_SCOPE_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    board: str
    power_modes: _containers.RepeatedCompositeFieldContainer[JetsonPowerMode]
    default_power_mode: int
    gpu_devfreq: str
    rails: _containers.RepeatedScalarFieldContainer[str]
    energy_scope: str
    unreadable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, board: _Optional[str] = ..., power_modes: _Optional[_Iterable[_Union[JetsonPowerMode, _Mapping]]] = ..., default_power_mode: _Optional[int] = ..., gpu_devfreq: _Optional[str] = ..., rails: _Optional[_Iterable[str]] = ..., energy_scope: _Optional[str] = ..., unreadable: _Optional[_Iterable[str]] = ...) -> None: ...

class RaplDomainInfo(_message.Message):
    __slots__ = ("part", "kind", "max_energy_range_uj", "readable", "reason")
    PART_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MAX_ENERGY_RANGE_UJ_FIELD_NUMBER: _ClassVar[int]
    READABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    part: str
    kind: str
    max_energy_range_uj: int
    readable: bool
    reason: str
    def __init__(self, part: _Optional[str] = ..., kind: _Optional[str] = ..., max_energy_range_uj: _Optional[int] = ..., readable: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RaplInfo(_message.Message):
    __slots__ = ("interface", "domains", "energy_scope")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_SCOPE_FIELD_NUMBER: _ClassVar[int]
    interface: str
    domains: _containers.RepeatedCompositeFieldContainer[RaplDomainInfo]
    energy_scope: str
    def __init__(self, interface: _Optional[str] = ..., domains: _Optional[_Iterable[_Union[RaplDomainInfo, _Mapping]]] = ..., energy_scope: _Optional[str] = ...) -> None: ...

class TelemetrySourceInfo(_message.Message):
    __slots__ = ("name", "available", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class DeviceDefaults(_message.Message):
    __slots__ = ("intra_op_threads", "providers", "device_class")
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    intra_op_threads: int
    providers: _containers.RepeatedScalarFieldContainer[str]
    device_class: str
    def __init__(self, intra_op_threads: _Optional[int] = ..., providers: _Optional[_Iterable[str]] = ..., device_class: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("agent_version", "hostname", "host_fingerprint", "cpu", "memory", "os", "board_model", "runtime", "gpus", "limits", "runtimes", "jetson", "rapl", "telemetry", "defaults")
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
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    JETSON_FIELD_NUMBER: _ClassVar[int]
    RAPL_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
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
    runtimes: _containers.RepeatedCompositeFieldContainer[RuntimeInfo]
    jetson: JetsonInfo
    rapl: RaplInfo
    telemetry: _containers.RepeatedCompositeFieldContainer[TelemetrySourceInfo]
    defaults: DeviceDefaults
    def __init__(self, agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., host_fingerprint: _Optional[str] = ..., cpu: _Optional[_Union[CpuInfo, _Mapping]] = ..., memory: _Optional[_Union[MemoryInfo, _Mapping]] = ..., os: _Optional[_Union[OsInfo, _Mapping]] = ..., board_model: _Optional[str] = ..., runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., gpus: _Optional[_Iterable[_Union[GpuInfo, _Mapping]]] = ..., limits: _Optional[_Union[AgentLimits, _Mapping]] = ..., runtimes: _Optional[_Iterable[_Union[RuntimeInfo, _Mapping]]] = ..., jetson: _Optional[_Union[JetsonInfo, _Mapping]] = ..., rapl: _Optional[_Union[RaplInfo, _Mapping]] = ..., telemetry: _Optional[_Iterable[_Union[TelemetrySourceInfo, _Mapping]]] = ..., defaults: _Optional[_Union[DeviceDefaults, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceState(_message.Message):
    __slots__ = ("timestamp", "freq_current_mhz", "freq_max_mhz", "temperature_available", "temperature_c", "load_1m", "cpu_percent", "memory_available_bytes", "throttled", "others_cpu_percent", "gpus", "jetson")
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
    GPUS_FIELD_NUMBER: _ClassVar[int]
    JETSON_FIELD_NUMBER: _ClassVar[int]
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
    gpus: _containers.RepeatedCompositeFieldContainer[GpuState]
    jetson: JetsonState
    def __init__(self, timestamp: _Optional[float] = ..., freq_current_mhz: _Optional[float] = ..., freq_max_mhz: _Optional[float] = ..., temperature_available: _Optional[bool] = ..., temperature_c: _Optional[float] = ..., load_1m: _Optional[float] = ..., cpu_percent: _Optional[float] = ..., memory_available_bytes: _Optional[int] = ..., throttled: _Optional[bool] = ..., others_cpu_percent: _Optional[float] = ..., gpus: _Optional[_Iterable[_Union[GpuState, _Mapping]]] = ..., jetson: _Optional[_Union[JetsonState, _Mapping]] = ...) -> None: ...

class GpuState(_message.Message):
    __slots__ = ("index", "sm_clock_mhz", "memory_clock_mhz", "temperature_c", "power_w", "clock_event_reasons", "clock_event_reasons_known", "throttled", "gpu_utilization_percent", "memory_utilization_percent", "memory_used_bytes", "unreadable")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SM_CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    CLOCK_EVENT_REASONS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_EVENT_REASONS_KNOWN_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    GPU_UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    index: int
    sm_clock_mhz: int
    memory_clock_mhz: int
    temperature_c: float
    power_w: float
    clock_event_reasons: _containers.RepeatedScalarFieldContainer[str]
    clock_event_reasons_known: bool
    throttled: bool
    gpu_utilization_percent: int
    memory_utilization_percent: int
    memory_used_bytes: int
    unreadable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., sm_clock_mhz: _Optional[int] = ..., memory_clock_mhz: _Optional[int] = ..., temperature_c: _Optional[float] = ..., power_w: _Optional[float] = ..., clock_event_reasons: _Optional[_Iterable[str]] = ..., clock_event_reasons_known: _Optional[bool] = ..., throttled: _Optional[bool] = ..., gpu_utilization_percent: _Optional[int] = ..., memory_utilization_percent: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., unreadable: _Optional[_Iterable[str]] = ...) -> None: ...

class PowerRail(_message.Message):
    __slots__ = ("label", "power_w", "voltage_v", "current_a")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    VOLTAGE_V_FIELD_NUMBER: _ClassVar[int]
    CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    label: str
    power_w: float
    voltage_v: float
    current_a: float
    def __init__(self, label: _Optional[str] = ..., power_w: _Optional[float] = ..., voltage_v: _Optional[float] = ..., current_a: _Optional[float] = ...) -> None: ...

class JetsonState(_message.Message):
    __slots__ = ("power_mode_id", "power_mode_name", "gpu_freq_mhz", "gpu_min_freq_mhz", "gpu_max_freq_mhz", "gpu_load_percent", "emc_freq_mhz", "rails", "unreadable")
    POWER_MODE_ID_FIELD_NUMBER: _ClassVar[int]
    POWER_MODE_NAME_FIELD_NUMBER: _ClassVar[int]
    GPU_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    GPU_MIN_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    GPU_MAX_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    GPU_LOAD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    EMC_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    RAILS_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    power_mode_id: int
    power_mode_name: str
    gpu_freq_mhz: float
    gpu_min_freq_mhz: float
    gpu_max_freq_mhz: float
    gpu_load_percent: float
    emc_freq_mhz: float
    rails: _containers.RepeatedCompositeFieldContainer[PowerRail]
    unreadable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, power_mode_id: _Optional[int] = ..., power_mode_name: _Optional[str] = ..., gpu_freq_mhz: _Optional[float] = ..., gpu_min_freq_mhz: _Optional[float] = ..., gpu_max_freq_mhz: _Optional[float] = ..., gpu_load_percent: _Optional[float] = ..., emc_freq_mhz: _Optional[float] = ..., rails: _Optional[_Iterable[_Union[PowerRail, _Mapping]]] = ..., unreadable: _Optional[_Iterable[str]] = ...) -> None: ...

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

class CachedModel(_message.Message):
    __slots__ = ("sha256", "format", "size_bytes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    format: ModelFormat
    size_bytes: int
    def __init__(self, sha256: _Optional[str] = ..., format: _Optional[_Union[ModelFormat, str]] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class HasModelsResponse(_message.Message):
    __slots__ = ("present", "missing", "present_models")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    PRESENT_MODELS_FIELD_NUMBER: _ClassVar[int]
    present: _containers.RepeatedScalarFieldContainer[str]
    missing: _containers.RepeatedScalarFieldContainer[str]
    present_models: _containers.RepeatedCompositeFieldContainer[CachedModel]
    def __init__(self, present: _Optional[_Iterable[str]] = ..., missing: _Optional[_Iterable[str]] = ..., present_models: _Optional[_Iterable[_Union[CachedModel, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("sha256", "size_bytes", "already_present", "format")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    already_present: bool
    format: ModelFormat
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., already_present: _Optional[bool] = ..., format: _Optional[_Union[ModelFormat, str]] = ...) -> None: ...

class InputShape(_message.Message):
    __slots__ = ("name", "dims")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dims: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dims: _Optional[_Iterable[int]] = ...) -> None: ...

class BenchmarkSettings(_message.Message):
    __slots__ = ("warmup_runs", "min_runs", "min_duration_s", "max_runs", "max_duration_s", "intra_op_threads", "inter_op_threads", "providers", "graph_optimization", "input_shapes", "seed", "method", "timeout_s", "memory_cap_bytes", "runtime", "profile", "profile_runs", "fp16", "agent_defaults")
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
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_RUNS_FIELD_NUMBER: _ClassVar[int]
    FP16_FIELD_NUMBER: _ClassVar[int]
    AGENT_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
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
    runtime: str
    profile: bool
    profile_runs: int
    fp16: bool
    agent_defaults: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warmup_runs: _Optional[int] = ..., min_runs: _Optional[int] = ..., min_duration_s: _Optional[float] = ..., max_runs: _Optional[int] = ..., max_duration_s: _Optional[float] = ..., intra_op_threads: _Optional[int] = ..., inter_op_threads: _Optional[int] = ..., providers: _Optional[_Iterable[str]] = ..., graph_optimization: _Optional[_Union[GraphOptimization, str]] = ..., input_shapes: _Optional[_Iterable[_Union[InputShape, _Mapping]]] = ..., seed: _Optional[int] = ..., method: _Optional[_Union[Method, str]] = ..., timeout_s: _Optional[float] = ..., memory_cap_bytes: _Optional[int] = ..., runtime: _Optional[str] = ..., profile: _Optional[bool] = ..., profile_runs: _Optional[int] = ..., fp16: _Optional[bool] = ..., agent_defaults: _Optional[_Iterable[str]] = ...) -> None: ...

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

class OperatorTiming(_message.Message):
    __slots__ = ("node_name", "op_type", "median_ms", "share", "provider", "runs")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    op_type: str
    median_ms: float
    share: float
    provider: str
    runs: int
    def __init__(self, node_name: _Optional[str] = ..., op_type: _Optional[str] = ..., median_ms: _Optional[float] = ..., share: _Optional[float] = ..., provider: _Optional[str] = ..., runs: _Optional[int] = ...) -> None: ...

class OpTypeTiming(_message.Message):
    __slots__ = ("op_type", "nodes", "total_ms", "share")
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    op_type: str
    nodes: int
    total_ms: float
    share: float
    def __init__(self, op_type: _Optional[str] = ..., nodes: _Optional[int] = ..., total_ms: _Optional[float] = ..., share: _Optional[float] = ...) -> None: ...

class OperatorProfile(_message.Message):
    __slots__ = ("source", "profiled_runs", "operators", "op_types", "total_ms", "run_median_ms", "times_are_means")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROFILED_RUNS_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    OP_TYPES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    RUN_MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    TIMES_ARE_MEANS_FIELD_NUMBER: _ClassVar[int]
    source: ProfileSource
    profiled_runs: int
    operators: _containers.RepeatedCompositeFieldContainer[OperatorTiming]
    op_types: _containers.RepeatedCompositeFieldContainer[OpTypeTiming]
    total_ms: float
    run_median_ms: float
    times_are_means: bool
    def __init__(self, source: _Optional[_Union[ProfileSource, str]] = ..., profiled_runs: _Optional[int] = ..., operators: _Optional[_Iterable[_Union[OperatorTiming, _Mapping]]] = ..., op_types: _Optional[_Iterable[_Union[OpTypeTiming, _Mapping]]] = ..., total_ms: _Optional[float] = ..., run_median_ms: _Optional[float] = ..., times_are_means: _Optional[bool] = ...) -> None: ...

class Energy(_message.Message):
    __slots__ = ("source", "method", "scope", "readable", "reason", "interval_s", "inferences", "joules", "resolution_j", "mj_per_inference", "uncertainty_mj", "mean_power_w", "samples", "idle_power_w", "net_mj_per_inference", "net_uncertainty_mj")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    READABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    INFERENCES_FIELD_NUMBER: _ClassVar[int]
    JOULES_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_J_FIELD_NUMBER: _ClassVar[int]
    MJ_PER_INFERENCE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_MJ_FIELD_NUMBER: _ClassVar[int]
    MEAN_POWER_W_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IDLE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    NET_MJ_PER_INFERENCE_FIELD_NUMBER: _ClassVar[int]
    NET_UNCERTAINTY_MJ_FIELD_NUMBER: _ClassVar[int]
    source: str
    method: str
    scope: str
    readable: bool
    reason: str
    interval_s: float
    inferences: int
    joules: float
    resolution_j: float
    mj_per_inference: float
    uncertainty_mj: float
    mean_power_w: float
    samples: int
    idle_power_w: float
    net_mj_per_inference: float
    net_uncertainty_mj: float
    def __init__(self, source: _Optional[str] = ..., method: _Optional[str] = ..., scope: _Optional[str] = ..., readable: _Optional[bool] = ..., reason: _Optional[str] = ..., interval_s: _Optional[float] = ..., inferences: _Optional[int] = ..., joules: _Optional[float] = ..., resolution_j: _Optional[float] = ..., mj_per_inference: _Optional[float] = ..., uncertainty_mj: _Optional[float] = ..., mean_power_w: _Optional[float] = ..., samples: _Optional[int] = ..., idle_power_w: _Optional[float] = ..., net_mj_per_inference: _Optional[float] = ..., net_uncertainty_mj: _Optional[float] = ...) -> None: ...

class GpuMemoryPeak(_message.Message):
    __slots__ = ("peak_bytes", "polls", "period_s", "reason")
    PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    POLLS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    peak_bytes: int
    polls: int
    period_s: float
    reason: str
    def __init__(self, peak_bytes: _Optional[int] = ..., polls: _Optional[int] = ..., period_s: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class CopyTiming(_message.Message):
    __slots__ = ("device", "input_bytes", "output_bytes", "samples_ms", "stats")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_MS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    device: str
    input_bytes: int
    output_bytes: int
    samples_ms: _containers.RepeatedScalarFieldContainer[float]
    stats: LatencyStats
    def __init__(self, device: _Optional[str] = ..., input_bytes: _Optional[int] = ..., output_bytes: _Optional[int] = ..., samples_ms: _Optional[_Iterable[float]] = ..., stats: _Optional[_Union[LatencyStats, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("model_sha256", "settings", "samples_ms", "stats", "session_create_ms", "first_run_ms", "peak_rss_bytes", "provider", "state_before", "state_after", "warnings", "paired", "agent_version", "onnxruntime_version", "started_at", "wall_s", "inputs", "host_fingerprint", "model_format", "runtime_version", "profile", "loop_start_ns", "loop_end_ns", "timed_inferences", "energy", "gpu_memory", "copies", "engine_cache_hit", "samples_source")
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
    MODEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    LOOP_START_NS_FIELD_NUMBER: _ClassVar[int]
    LOOP_END_NS_FIELD_NUMBER: _ClassVar[int]
    TIMED_INFERENCES_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_SOURCE_FIELD_NUMBER: _ClassVar[int]
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
    model_format: ModelFormat
    runtime_version: str
    profile: OperatorProfile
    loop_start_ns: int
    loop_end_ns: int
    timed_inferences: int
    energy: _containers.RepeatedCompositeFieldContainer[Energy]
    gpu_memory: GpuMemoryPeak
    copies: CopyTiming
    engine_cache_hit: bool
    samples_source: SamplesSource
    def __init__(self, model_sha256: _Optional[str] = ..., settings: _Optional[_Union[BenchmarkSettings, _Mapping]] = ..., samples_ms: _Optional[_Iterable[float]] = ..., stats: _Optional[_Union[LatencyStats, _Mapping]] = ..., session_create_ms: _Optional[float] = ..., first_run_ms: _Optional[float] = ..., peak_rss_bytes: _Optional[int] = ..., provider: _Optional[str] = ..., state_before: _Optional[_Union[DeviceState, _Mapping]] = ..., state_after: _Optional[_Union[DeviceState, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., paired: _Optional[_Union[PairedResult, _Mapping]] = ..., agent_version: _Optional[str] = ..., onnxruntime_version: _Optional[str] = ..., started_at: _Optional[float] = ..., wall_s: _Optional[float] = ..., inputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., host_fingerprint: _Optional[str] = ..., model_format: _Optional[_Union[ModelFormat, str]] = ..., runtime_version: _Optional[str] = ..., profile: _Optional[_Union[OperatorProfile, _Mapping]] = ..., loop_start_ns: _Optional[int] = ..., loop_end_ns: _Optional[int] = ..., timed_inferences: _Optional[int] = ..., energy: _Optional[_Iterable[_Union[Energy, _Mapping]]] = ..., gpu_memory: _Optional[_Union[GpuMemoryPeak, _Mapping]] = ..., copies: _Optional[_Union[CopyTiming, _Mapping]] = ..., engine_cache_hit: _Optional[bool] = ..., samples_source: _Optional[_Union[SamplesSource, str]] = ...) -> None: ...
