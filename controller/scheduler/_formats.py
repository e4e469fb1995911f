"""Which model format a device is sent: the one its runtime for the request runs.

A device's agent lists its runtimes in Describe (onnxruntime runs ONNX,
LiteRT runs TFLite). The runtime that will run a request, and so the format
to export a search space's archs and blocks in, is

1. the request's ``runtime`` when it names one (``--runtime litert``): the
   format that runtime runs (from the device's Describe, else the known
   runtimes);
2. else the device's: ONNX when its onnxruntime is available (also every v1
   agent, which knows no other runtime), otherwise the format of its first
   available runtime (a LiteRT-only device, e.g. a phone with only
   ``benchmark_model``);
3. ONNX for a device that was never described.

So a LUT, ``measure`` or ``search`` for a LiteRT device exports ``.tflite``
where one for an onnxruntime device exports ``.onnx``, with no flag beyond
the device's own settings. The agent still decides: a request it cannot run
for the format it gets is refused with INVALID_SETTINGS naming the runtime.
"""

from __future__ import annotations

from fleetnas.agent.runtimes import ONNXRUNTIME, RUNTIME_FOR_FORMAT
from fleetnas.api.v1 import agent_pb2

#: runtime name -> the format it runs, for runtimes a description does not list
_FORMAT_OF_RUNTIME = {runtime: fmt for fmt, runtime in RUNTIME_FOR_FORMAT.items()}
ONNX = agent_pb2.MODEL_FORMAT_ONNX


def model_format_for(
    request: agent_pb2.BenchmarkSettings, description: agent_pb2.DeviceDescription | None
) -> int:
    """The ``ModelFormat`` to send a device described by ``description`` for ``request``
    (module docstring); ``description`` is ``None`` for a device never described."""
    runtimes = list(description.runtimes) if description is not None else []
    if request.runtime:
        for info in runtimes:
            if info.name == request.runtime and info.formats:
                return int(info.formats[0])
        return _FORMAT_OF_RUNTIME.get(request.runtime, ONNX)
    available = [r for r in runtimes if r.available and r.formats]
    if not available or any(r.name == ONNXRUNTIME for r in available):
        return ONNX
    return int(available[0].formats[0])
