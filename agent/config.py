"""The agent's settings, listed once: name, default, help.

Every setting is a flag of ``fleetnas-agent serve``; secrets (the token) also
come from environment variables so they stay out of shell history and process
listings. :func:`AgentConfig.validate` enforces the trust model: an agent that
listens off loopback must have a token (or be told ``--insecure``).

The ``adb_*`` settings make the agent serve a phone attached over ADB
instead of this host (``--adb SERIAL``; see docs/android.md).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.agent.settings import MAX_THREADS
from fleetnas.api.v1 import agent_pb2

MIB = 1024 * 1024
#: handler threads each quick RPC kind may hold at once (they answer in about a
#: millisecond; ``Check`` is the gRPC health check). See rpc_budgets.py.
QUICK_RPC_THREADS: dict[str, int] = {"Status": 4, "Describe": 2, "HasModels": 2, "Check": 2}
TOKEN_ENV = "FLEETNAS_AGENT_TOKEN"
MAX_ENERGY_IDLE_S = 60.0
#: the core clusters a phone's benchmarks can be pinned to (agent/android/_device.py)
ADB_CLUSTERS = ("little", "big", "prime", "all")
DEFAULT_ADB_WORK_DIR = "/data/local/tmp/fleetnas"
_CLASS_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ConfigError(ValueError):
    """The agent's configuration is unsafe or inconsistent."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fleetnas-agent"


def default_memory_cap_mb() -> int:
    """Half the host's RAM, at most 8 GiB: room for the OS and the agent itself."""
    try:
        import psutil

        total_mb = psutil.virtual_memory().total // MIB
    except Exception:  # noqa: BLE001 -- psutil missing or /proc unreadable: a safe fixed cap
        return 2048
    return int(min(8192, max(256, total_mb // 2)))


#: The automatic model-cache budget: this share of the free disk where the cache lives, capped.
AUTO_CACHE_DISK_SHARE = 0.25
AUTO_CACHE_MAX_MB = 2048


def auto_cache_budget_mb(cache_dir: Path, max_model_mb: int, free_bytes: int | None = None) -> int:
    """The model-cache budget when none is given: a quarter of the free disk of the file system
    holding ``cache_dir`` (or its nearest existing parent; ``free_bytes`` if given), at most
    2048 MiB and at least ``max_model_mb`` (one model must fit). 2 GiB on an 8 GB SD card would
    be a lot."""
    if free_bytes is None:
        path = Path(cache_dir).absolute()
        while not path.exists() and path != path.parent:
            path = path.parent
        free_bytes = shutil.disk_usage(path).free
    free_mb = free_bytes // MIB
    return int(max(max_model_mb, min(AUTO_CACHE_MAX_MB, free_mb * AUTO_CACHE_DISK_SHARE)))


def is_loopback(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class AgentConfig:
    """Everything ``fleetnas-agent serve`` can be told. Sizes in MiB, times in seconds."""

    host: str = "127.0.0.1"
    port: int = 50051
    token: str | None = None
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    cache_budget_mb: int | None = None  # None: auto_cache_budget_mb, resolved at start
    max_model_mb: int = 256
    max_queue: int = 8
    max_timeout_s: float = 600.0
    memory_cap_mb: int = field(default_factory=default_memory_cap_mb)
    host_fingerprint: str | None = None
    grpc_workers: int = 0
    max_uploads: int = 4
    upload_idle_timeout_s: float = 30.0
    drain_timeout_s: float = 60.0
    # Device-side defaults (Describe's DeviceDefaults): what this device should be
    # measured with when a request leaves threads or providers unset.
    default_threads: int | None = None
    default_providers: tuple[str, ...] = ()
    device_class: str = ""
    energy_idle_s: float = 0.0
    # A phone over ADB (docs/android.md): unset adb_serial = this host.
    adb_serial: str | None = None
    adb_benchmark_binaries: tuple[str, ...] = ()
    adb_path: str = "adb"
    adb_cluster: str = "big"
    adb_cooldown_target_c: float = 40.0
    adb_cooldown_timeout_s: float = 300.0
    adb_lock_dir: Path | None = None
    adb_work_dir: str = DEFAULT_ADB_WORK_DIR

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @property
    def max_model_bytes(self) -> int:
        return self.max_model_mb * MIB

    @property
    def cache_budget_bytes(self) -> int:
        budget = self.cache_budget_mb
        if budget is None:
            budget = auto_cache_budget_mb(self.cache_dir, self.max_model_mb)
        return budget * MIB

    @property
    def memory_cap_bytes(self) -> int:
        return self.memory_cap_mb * MIB

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def defaults(self) -> agent_pb2.DeviceDefaults:
        """The device-side defaults as Describe carries them."""
        out = agent_pb2.DeviceDefaults(providers=list(self.default_providers),
                                       device_class=self.device_class)
        if self.default_threads is not None:
            out.intra_op_threads = self.default_threads
        return out

    def check_default_providers(self, description: agent_pb2.DeviceDescription) -> None:
        """ConfigError naming what is available unless every --default-provider is an
        accelerator of one of the device's available runtimes (or a v1 provider)."""
        available = list(description.runtime.available_providers)
        for runtime in description.runtimes:
            if runtime.available:
                available.extend(a for a in runtime.accelerators if a not in available)
        unknown = [p for p in self.default_providers if p not in available]
        if unknown:
            raise ConfigError(
                f"--default-provider {unknown[0]} is not available here; the runtimes have: "
                f"{', '.join(available) or 'none'}"
            )

    def thread_budgets(self) -> dict[str, int]:
        """Handler threads each RPC kind may hold at once (enforced by rpc_budgets.py).

        Benchmark: the running job, ``max_queue`` waiting ones and one more,
        so that a call past the queue hears QUEUE_FULL from the job gate
        rather than AGENT_OVERLOADED; UploadModel: ``max_uploads``; the
        quick kinds: :data:`QUICK_RPC_THREADS`.
        """
        return {
            "Benchmark": self.max_queue + 2,
            "UploadModel": self.max_uploads,
            **QUICK_RPC_THREADS,
        }

    @property
    def handler_threads(self) -> int:
        """The gRPC thread pool's size: ``grpc_workers``, or (0) one per budget slot."""
        return self.grpc_workers or sum(self.thread_budgets().values())

    def validate(self) -> None:
        """Raise ConfigError naming the flag to fix when the settings are unsafe or inconsistent."""
        if not is_loopback(self.host) and not self.token and not self.insecure:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: set {TOKEN_ENV} "
                "(or --token), or pass --insecure if this network is trusted"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"--{name.replace('_', '-')}: no such file: {path}")
        if self.max_model_mb <= 0:
            raise ConfigError(f"--max-model-mb must be positive, got {self.max_model_mb}")
        if self.cache_budget_mb is not None and self.cache_budget_mb < self.max_model_mb:
            raise ConfigError(
                f"--cache-budget-mb ({self.cache_budget_mb}) must be at least "
                f"--max-model-mb ({self.max_model_mb})"
            )
        if self.max_queue < 0:
            raise ConfigError(f"--max-queue must be >= 0, got {self.max_queue}")
        if self.max_timeout_s <= 0:
            raise ConfigError(f"--max-timeout must be positive, got {self.max_timeout_s}")
        if self.memory_cap_mb < 64:
            raise ConfigError(f"--memory-cap-mb must be at least 64, got {self.memory_cap_mb}")
        if self.max_uploads < 1:
            raise ConfigError(f"--max-uploads must be at least 1, got {self.max_uploads}")
        if self.upload_idle_timeout_s <= 0:
            raise ConfigError(
                f"--upload-idle-timeout must be positive, got {self.upload_idle_timeout_s}"
            )
        # Every budget slot needs its own thread, or a flood of one RPC kind
        # could hold the threads another kind is entitled to.
        needed = sum(self.thread_budgets().values())
        if self.grpc_workers and self.grpc_workers < needed:
            raise ConfigError(
                f"--grpc-workers {self.grpc_workers} is too few for the RPC budgets "
                f"(--max-queue {self.max_queue} + 2 benchmarks, --max-uploads "
                f"{self.max_uploads}, {sum(QUICK_RPC_THREADS.values())} for health, status, "
                f"describe and has-models): raise it to {needed}, or leave it 0 (automatic)"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0..65535, got {self.port}")
        self._validate_defaults()
        self._validate_adb()

    def _validate_defaults(self) -> None:
        if self.default_threads is not None and not 0 <= self.default_threads <= MAX_THREADS:
            raise ConfigError(
                f"--default-threads must be 0..{MAX_THREADS} (0 = onnxruntime's choice), "
                f"got {self.default_threads}"
            )
        if len(set(self.default_providers)) != len(self.default_providers):
            raise ConfigError("--default-provider lists a provider twice")
        if self.device_class and not _CLASS_PATTERN.fullmatch(self.device_class):
            raise ConfigError(
                f"--class {self.device_class[:80]!r} must be 1-64 letters, digits and . _ -"
            )
        if not (0 <= self.energy_idle_s <= MAX_ENERGY_IDLE_S):
            raise ConfigError(
                f"--energy-idle-s must be 0..{MAX_ENERGY_IDLE_S:g} s (0 = no idle baseline), "
                f"got {self.energy_idle_s}"
            )

    def _validate_adb(self) -> None:
        if not self.adb_serial:
            given = [flag for flag, value in (
                ("--adb-benchmark-binary", self.adb_benchmark_binaries),
                ("--adb-lock-dir", self.adb_lock_dir),
            ) if value]  # fmt: skip
            if given:
                raise ConfigError(f"{given[0]} needs --adb SERIAL (the phone to benchmark on)")
            return
        if not self.adb_benchmark_binaries:
            raise ConfigError(
                "--adb needs at least one --adb-benchmark-binary KIND=PATH[,LIB...] "
                "(benchmark_model for .tflite, onnxruntime_perf_test for .onnx; "
                "docs/android.md says where to get them)"
            )
        if self.energy_idle_s:
            raise ConfigError("--energy-idle-s measures this host's energy meters; a phone "
                              "agent (--adb) has none: leave it 0")
        if self.adb_cluster not in ADB_CLUSTERS:
            raise ConfigError(
                f"--adb-cluster {self.adb_cluster[:40]!r}: choose one of {', '.join(ADB_CLUSTERS)}"
            )
        if not math.isfinite(self.adb_cooldown_target_c):
            raise ConfigError(
                f"--adb-cooldown-target must be a temperature in °C, got {self.adb_cooldown_target_c}"
            )
        if not (math.isfinite(self.adb_cooldown_timeout_s) and self.adb_cooldown_timeout_s >= 0):
            raise ConfigError(
                f"--adb-cooldown-timeout must be >= 0 s (0 = check once, never wait), "
                f"got {self.adb_cooldown_timeout_s}"
            )
