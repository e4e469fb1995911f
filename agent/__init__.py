"""fleetnas agent: a gRPC service that benchmarks ONNX models on the device it runs on.

Install with ``pip install 'fleetnas[agent]'`` (no torch). Start with
``fleetnas-agent serve``. The wire protocol is ``fleetnas.api.v1`` (see
``protos/fleetnas/api/v1/agent.proto``).
"""

__version__ = "0.1.0"
