"""Runtime backends of the benchmark worker: onnxruntime and LiteRT behind one contract.

The contract is :class:`Backend` / :class:`LoadedModel` (``_base``); the
implementations live in private modules and are imported only by a worker
(they import their runtime): ``_onnxruntime`` (with ``_ort_gpu`` for CUDA and
TensorRT) and ``_litert``. :func:`backend_for` picks one by the resolved
``settings.runtime``; :func:`preload` imports every installed runtime ahead of
a job (the worker's, or the zygote's, slow part).
"""

from __future__ import annotations

import importlib
import importlib.util

from fleetnas.agent.backends._base import (
    Backend,
    JobFailure,
    LoadContext,
    LoadedModel,
    ProfileUnavailable,
    memory_failure,
)
from fleetnas.agent.runtimes import LITERT, LITERT_INSTALL_HINT, LITERT_MODULE, ONNXRUNTIME

__all__ = [
    "Backend",
    "JobFailure",
    "LoadContext",
    "LoadedModel",
    "ProfileUnavailable",
    "backend_for",
    "memory_failure",
    "preload",
]

# runtime name -> (module of its backend, class name, module that must be importable)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    ONNXRUNTIME: ("fleetnas.agent.backends._onnxruntime", "OnnxRuntimeBackend", "onnxruntime"),
    LITERT: ("fleetnas.agent.backends._litert", "LiteRtBackend", LITERT_MODULE),
}
_LOADED: dict[str, Backend] = {}


def backend_for(runtime: str) -> Backend:
    """The backend of ``runtime`` (imports its runtime on first use).

    Raises JobFailure(InternalError) for a runtime this worker does not know
    or cannot import: settings resolution let it through, so the agent
    described a runtime its worker lacks.
    """
    if runtime in _LOADED:
        return _LOADED[runtime]
    entry = _REGISTRY.get(runtime)
    if entry is None:
        raise JobFailure("InternalError", f"the benchmark worker has no runtime {runtime!r}; "
                                          f"it has {sorted(_REGISTRY)}")  # fmt: skip
    module_name, class_name, _ = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; {LITERT_INSTALL_HINT}" if runtime == LITERT else ""
        raise JobFailure("InternalError", f"the benchmark worker cannot import runtime "
                                          f"{runtime}: {exc}{hint}") from exc  # fmt: skip
    backend: Backend = getattr(module, class_name)()
    _LOADED[runtime] = backend
    return backend


def preload() -> dict[str, str]:
    """Import every installed runtime's backend; their versions by runtime name."""
    versions = {}
    for runtime, (_, _, required) in _REGISTRY.items():
        if importlib.util.find_spec(required) is None:
            continue
        try:
            versions[runtime] = backend_for(runtime).version()
        except JobFailure:
            continue  # installed but broken: a job that asks for it gets the reason
    return versions
