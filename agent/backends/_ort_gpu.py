"""onnxruntime on NVIDIA GPUs: CUDA and TensorRT measured as inference, not as copies.

* **I/O binding.** With CUDA or TensorRT first in ``settings.providers``,
  the inputs are copied to the GPU once and bound there
  (``OrtValue.ortvalue_from_numpy(..., "cuda", 0)``), outputs are bound on
  the GPU, and a timed run is ``session.run_with_iobinding`` alone (which
  synchronises the provider's stream before it returns, unless a run option
  says otherwise; none is set). The copies an application would add are
  timed separately, after the timed loop: one round is every input
  host->device and every output device->host, synchronous
  (:func:`time_copies`, ``BenchmarkResult.copies``).
* **TensorRT engines.** Building an engine is what TensorRT's session
  creation spends its time on, so it shows in ``session_create_ms``. Engines
  are cached on the agent in ``<engine cache dir>/<key>/``, the key a hash of
  the model's sha256, the provider options that change an engine (fp16,
  device) and the TensorRT version (:func:`tensorrt_version`); a later
  benchmark of the same model with the same options loads the engine
  instead (``engine_cache_hit``: the folder held an engine before the
  session was made).
* **fp16** (``settings.fp16``): TensorRT's ``trt_fp16_enable``. Settings
  validation refuses it for providers without such a switch.
* The GPU is device 0 (the first NVML/CUDA device).

Nothing here initialises CUDA in the agent or in the zygote: only a
worker's session does, after the fork.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from fleetnas.agent.backends._base import LoadContext
from fleetnas.agent.stats import latency_stats
from fleetnas.api.v1 import agent_pb2

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (CUDA, TENSORRT)
DEVICE_ID = 0
COPY_ROUNDS = 30
# TensorRT options that change the engine it builds; paths and switches of the cache do not.
_ENGINE_OPTIONS = ("trt_fp16_enable", "device_id")


@dataclass(frozen=True)
class Device:
    """Where bound tensors live: onnxruntime's device type and id."""

    kind: str = "cuda"
    index: int = DEVICE_ID

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.index}"


@dataclass(frozen=True)
class ProviderPlan:
    """How a session is made: the providers with their options, and where tensors live."""

    providers: list[Any]  # names, or (name, options) pairs, as InferenceSession takes them
    device: Device | None  # None: host tensors (CPU providers)
    engine_dir: Path | None = None  # TensorRT's engine cache folder for this model
    engine_cache_hit: bool | None = None  # the folder held an engine before the session


def tensorrt_version() -> str:
    """The TensorRT version the TensorRT provider will load ("10.3.0"); "unknown" if none."""
    try:
        import tensorrt  # type: ignore[import-not-found]

        return str(tensorrt.__version__)
    except ImportError:
        pass
    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"):
        try:
            value = int(ctypes.CDLL(name).getInferLibVersion())
        except (OSError, AttributeError):
            continue
        # NV_TENSORRT_VERSION: major*1000 + minor*100 + patch up to 8.x, major*10000 + ... from 10
        major, rest = (value // 10000, value % 10000) if value >= 100000 else divmod(value, 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    return "unknown"


def engine_key(model_sha256: str, options: dict[str, str], trt_version: str) -> str:
    """The engine cache key: model hash + the options that shape an engine + TensorRT version."""
    shaping = {k: options[k] for k in _ENGINE_OPTIONS if k in options}
    text = json.dumps([model_sha256, shaping, trt_version], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _has_engine(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.engine"))


def plan(
    settings: agent_pb2.BenchmarkSettings, context: LoadContext, ort_version: str
) -> ProviderPlan:
    """The providers (with options) and device for a session per ``settings``."""
    names = list(settings.providers)
    if not names or names[0] not in GPU_PROVIDERS:
        return ProviderPlan(providers=names, device=None)
    device = Device()
    providers: list[Any] = []
    engine_dir: Path | None = None
    hit: bool | None = None
    for name in names:
        if name == CUDA:
            providers.append((CUDA, {"device_id": str(device.index)}))
        elif name == TENSORRT:
            options = {"device_id": str(device.index),
                       "trt_fp16_enable": "True" if settings.fp16 else "False"}  # fmt: skip
            if context.engine_cache_dir is not None and context.model_sha256:
                key = engine_key(context.model_sha256, options, tensorrt_version())
                engine_dir = context.engine_cache_dir / key
                hit = _has_engine(engine_dir)
                engine_dir.mkdir(parents=True, exist_ok=True)
                options.update(trt_engine_cache_enable="True",
                               trt_engine_cache_path=str(engine_dir),
                               trt_timing_cache_enable="True",
                               trt_timing_cache_path=str(engine_dir))  # fmt: skip
            providers.append((TENSORRT, options))
        else:
            providers.append(name)
    return ProviderPlan(providers=providers, device=device, engine_dir=engine_dir,
                        engine_cache_hit=hit)  # fmt: skip


def bind(session: ort.InferenceSession, feeds: dict[str, np.ndarray], device: Device
         ) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """An IOBinding with every input copied to ``device`` and every output bound there, and
    the input OrtValues (kept: the binding refers to them)."""
    binding = session.io_binding()
    values = {}
    for name, array in feeds.items():
        values[name] = ort.OrtValue.ortvalue_from_numpy(array, device.kind, device.index)
        binding.bind_ortvalue_input(name, values[name])
    for output in session.get_outputs():
        binding.bind_output(output.name, device.kind, device.index)
    return binding, values


def time_copies(binding: Any, values: dict[str, Any], feeds: dict[str, np.ndarray],
                device: Device, rounds: int = COPY_ROUNDS) -> agent_pb2.CopyTiming:  # fmt: skip
    """``rounds`` synchronous rounds: every input host->device, every output device->host."""
    samples = []
    output_bytes = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for name, array in feeds.items():
            values[name].update_inplace(array)
        outputs = binding.copy_outputs_to_cpu()
        samples.append((time.perf_counter() - start) * 1000.0)
        output_bytes = sum(int(np.asarray(o).nbytes) for o in outputs)
    return agent_pb2.CopyTiming(
        device=device.name,
        input_bytes=sum(int(a.nbytes) for a in feeds.values()),
        output_bytes=output_bytes,
        samples_ms=samples,
        stats=latency_stats(samples),
    )
