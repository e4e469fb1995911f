"""Build a BenchmarkSettings request from command-line style values.

Shared by ``fleetnas-agent bench`` and the controller's ``fleetnas measure``
so both accept the same spellings. ``None`` means "unset: the agent's default".
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetnas.api.v1 import agent_pb2

OPT_LEVELS = {
    "disable": agent_pb2.GRAPH_OPTIMIZATION_DISABLE,
    "basic": agent_pb2.GRAPH_OPTIMIZATION_BASIC,
    "extended": agent_pb2.GRAPH_OPTIMIZATION_EXTENDED,
    "all": agent_pb2.GRAPH_OPTIMIZATION_ALL,
}
METHODS = {"plain": agent_pb2.METHOD_PLAIN, "paired": agent_pb2.METHOD_PAIRED}


def parse_shape(text: str) -> agent_pb2.InputShape:
    """Parse ``NAME=D1xD2x...`` (e.g. ``x=1x3x224x224``) into an InputShape."""
    name, sep, dims_text = text.partition("=")
    if not sep or not name or not dims_text:
        raise ValueError(f"bad shape {text!r}: expected NAME=D1xD2x..., e.g. x=1x3x224x224")
    try:
        dims = [int(d) for d in dims_text.lower().split("x")]
    except ValueError:
        raise ValueError(f"bad shape {text!r}: dimensions must be integers") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"bad shape {text!r}: dimensions must be positive")
    return agent_pb2.InputShape(name=name, dims=dims)


def build_settings(
    *,
    warmup: int | None = None,
    min_runs: int | None = None,
    max_runs: int | None = None,
    min_duration: float | None = None,
    max_duration: float | None = None,
    threads: int | None = None,
    inter_threads: int | None = None,
    providers: Sequence[str] = (),
    opt_level: str | None = None,
    shapes: Sequence[str] = (),
    seed: int | None = None,
    method: str | None = None,
    timeout: float | None = None,
) -> agent_pb2.BenchmarkSettings:
    """Return a request with only the given values set. Raises ValueError on bad spellings."""
    s = agent_pb2.BenchmarkSettings()
    for field, value in (
        ("warmup_runs", warmup),
        ("min_runs", min_runs),
        ("max_runs", max_runs),
        ("min_duration_s", min_duration),
        ("max_duration_s", max_duration),
        ("intra_op_threads", threads),
        ("inter_op_threads", inter_threads),
        ("seed", seed),
        ("timeout_s", timeout),
    ):
        if value is not None:
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"{field} must be >= 0, got {value}")
            setattr(s, field, value)
    s.providers.extend(providers)
    if opt_level is not None:
        if opt_level not in OPT_LEVELS:
            raise ValueError(f"opt level {opt_level!r}: choose one of {', '.join(OPT_LEVELS)}")
        s.graph_optimization = OPT_LEVELS[opt_level]
    if method is not None:
        if method not in METHODS:
            raise ValueError(f"method {method!r}: choose one of {', '.join(METHODS)}")
        s.method = METHODS[method]
    s.input_shapes.extend(parse_shape(text) for text in shapes)
    return s
