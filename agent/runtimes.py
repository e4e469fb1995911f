"""The runtimes an agent knows, for ``Describe`` and for resolving ``settings.runtime``.

Two runtimes, each named by the value ``BenchmarkSettings.runtime`` takes:

* ``onnxruntime`` runs ONNX; its accelerators are onnxruntime's available
  execution providers. It is a dependency of the agent, so always available.
* ``litert`` runs TFLite through ``ai-edge-litert`` (the ``fleetnas[litert]``
  extra). Found by its installed metadata, without importing it into the
  agent process (the worker imports it). Its accelerators are ``XNNPACK``
  (LiteRT's CPU path) and the delegates whose shared libraries the dynamic
  linker finds; nothing is loaded to find them.

:func:`describe_runtimes` lists both, installed or not; an unavailable one
says why and names the install command.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence

from fleetnas.api.v1 import agent_pb2

ONNXRUNTIME = "onnxruntime"
LITERT = "litert"
LITERT_DISTRIBUTION = "ai-edge-litert"
LITERT_MODULE = "ai_edge_litert"
LITERT_CPU = "XNNPACK"
# Delegate name -> the library name ctypes.util.find_library looks up (lib<name>.so).
LITERT_DELEGATE_LIBRARIES: dict[str, str] = {
    "GPU": "tensorflowlite_gpu_delegate",
    "EdgeTPU": "edgetpu",
}
#: the runtime a format runs on when the request names none
RUNTIME_FOR_FORMAT: dict[int, str] = {
    agent_pb2.MODEL_FORMAT_ONNX: ONNXRUNTIME,
    agent_pb2.MODEL_FORMAT_TFLITE: LITERT,
}
#: the accelerators a runtime uses when the request names none
DEFAULT_ACCELERATORS: dict[str, tuple[str, ...]] = {
    ONNXRUNTIME: ("CPUExecutionProvider",),
    LITERT: (LITERT_CPU,),
}
LITERT_INSTALL_HINT = "pip install 'fleetnas[litert]' (it brings ai-edge-litert)"


def onnxruntime_info() -> agent_pb2.RuntimeInfo:
    """onnxruntime's entry: version, execution providers, ONNX. Imports onnxruntime."""
    import onnxruntime

    providers = list(onnxruntime.get_available_providers())
    return agent_pb2.RuntimeInfo(
        onnxruntime_version=onnxruntime.__version__,
        available_providers=providers,
        name=ONNXRUNTIME,
        version=onnxruntime.__version__,
        accelerators=providers,
        formats=[agent_pb2.MODEL_FORMAT_ONNX],
        available=True,
    )


def litert_info(
    *,
    version_of: Callable[[str], str] = importlib.metadata.version,
    find_library: Callable[[str], str | None] = ctypes.util.find_library,
) -> agent_pb2.RuntimeInfo:
    """LiteRT's entry; ``available`` only when ``ai-edge-litert`` is installed and its
    module is on the path. The parameters are for tests."""
    info = agent_pb2.RuntimeInfo(name=LITERT, formats=[agent_pb2.MODEL_FORMAT_TFLITE])
    try:
        info.version = version_of(LITERT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        info.reason = f"{LITERT_DISTRIBUTION} is not installed: {LITERT_INSTALL_HINT}"
        return info
    if importlib.util.find_spec(LITERT_MODULE) is None:
        info.reason = (
            f"{LITERT_DISTRIBUTION} {info.version} is installed but its module "
            f"{LITERT_MODULE} is not importable: reinstall it ({LITERT_INSTALL_HINT})"
        )
        return info
    info.available = True
    info.accelerators.append(LITERT_CPU)
    info.accelerators.extend(
        name for name, lib in LITERT_DELEGATE_LIBRARIES.items() if find_library(lib)
    )
    return info


def describe_runtimes() -> list[agent_pb2.RuntimeInfo]:
    """Every runtime the agent knows, installed or not (``available`` says)."""
    return [onnxruntime_info(), litert_info()]


def find_runtime(
    runtimes: Sequence[agent_pb2.RuntimeInfo], name: str
) -> agent_pb2.RuntimeInfo | None:
    return next((r for r in runtimes if r.name == name), None)
