"""Model inputs, the same for every runtime: concrete shapes, size checks, seeded tensors.

A backend describes each input as an :class:`InputSpec` (its name, its dims
as the model declares them: an int for a fixed dim, anything else for a
dynamic one, and its element type by name); :func:`resolve_inputs` turns
them into concrete ``TensorInfo`` with the request's ``input_shapes`` and
refuses what cannot be made; :func:`make_feeds` makes the seeded tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fleetnas.agent._text import echo
from fleetnas.agent.backends._base import JobFailure
from fleetnas.api.v1 import agent_pb2

#: element type name (as in TensorInfo, onnxruntime's "tensor(<name>)") -> numpy dtype
DTYPES: dict[str, type] = {
    "float": np.float32,
    "double": np.float64,
    "float16": np.float16,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
}
_NAME_OF_DTYPE = {np.dtype(t): name for name, t in DTYPES.items()}


def element_type_of(dtype: object) -> str | None:
    """The element type name of a numpy dtype (``np.float32`` -> ``"float"``); None if unknown."""
    try:
        return _NAME_OF_DTYPE.get(np.dtype(dtype))  # type: ignore[call-overload]
    except TypeError:
        return None


@dataclass(frozen=True)
class InputSpec:
    """One model input as the model declares it; ``element_type`` None: a type the agent
    cannot make (``type_text`` names it)."""

    name: str
    dims: list[object]
    element_type: str | None
    type_text: str


def names_text(names: Sequence[str], most: int = 5) -> str:
    """Input names for a detail: the first ``most``, each cut short, and how many more."""
    shown = ", ".join(echo(n, 60) for n in names[:most])
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return f"[{shown}{more}]"


def resolve_inputs(
    specs: Sequence[InputSpec], settings: agent_pb2.BenchmarkSettings, *, use_shapes: bool
) -> list[agent_pb2.TensorInfo]:
    """Concrete dims and element type for every input.

    ``use_shapes`` False (the paired reference) ignores ``input_shapes``.
    Raises JobFailure(InvalidSettings) for a dynamic dim without an
    ``input_shapes`` entry, a shape that contradicts a fixed dim or the rank,
    or an ``input_shapes`` name that is not an input of the model;
    JobFailure(UnsupportedOperator) for an input type the agent cannot make;
    an input larger than the memory cap: see :func:`check_size`.
    """
    names = [spec.name for spec in specs]
    given = {s.name: list(s.dims) for s in settings.input_shapes} if use_shapes else {}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise JobFailure(
            "InvalidSettings",
            f"input_shapes names {names_text(unknown)}, which the model does not have; its "
            f"inputs are {names_text(names)}",
        )
    resolved = []
    for spec in specs:
        name = echo(spec.name, 60)
        if spec.element_type is None:
            raise JobFailure(
                "UnsupportedOperator",
                f"input {name} has type {spec.type_text}; the agent can only generate inputs "
                f"of types {sorted(DTYPES)}",
            )
        dims = concrete_dims(name, spec.dims, given.get(spec.name))
        check_size(name, dims, DTYPES[spec.element_type], settings.memory_cap_bytes,
                   given=spec.name in given)  # fmt: skip
        resolved.append(
            agent_pb2.TensorInfo(name=spec.name, dims=dims, element_type=spec.element_type)
        )
    return resolved


def concrete_dims(name: str, model_dims: list[object], given: list[int] | None) -> list[int]:
    """The concrete dims of input ``name`` (already fit for a detail): ``given`` checked
    against the model's shape, or the model's own dims when all are fixed."""
    if given is None:
        for axis, dim in enumerate(model_dims):
            if not (isinstance(dim, int) and dim >= 0):
                raise JobFailure(
                    "InvalidSettings",
                    f"input {name} has dynamic dim {axis} ({echo(dim, 40)}) in shape "
                    f"{echo(model_dims)}; pass input_shapes with an entry for {name} giving "
                    "concrete sizes for every dim",
                )
        return [d for d in model_dims if isinstance(d, int)]  # all of them, as just checked
    if len(given) != len(model_dims):
        raise JobFailure(
            "InvalidSettings",
            f"input_shapes gives input {name} {len(given)} dims {echo(given)}, but the "
            f"model's input has rank {len(model_dims)} (shape {echo(model_dims)})",
        )
    for axis, (want, have) in enumerate(zip(given, model_dims, strict=True)):
        if isinstance(have, int) and have > 0 and have != want:
            raise JobFailure(
                "InvalidSettings",
                f"input_shapes gives input {name} dims {echo(given)}, but dim {axis} of the "
                f"model's input is fixed at {have} (shape {echo(model_dims)})",
            )
    return given


def check_size(name: str, dims: list[int], dtype: type, cap: int, *, given: bool) -> None:
    """Refuse an input tensor that alone is larger than the worker's memory cap, naming it.

    Dims from ``input_shapes`` → InvalidSettings; the model's own fixed dims →
    MemoryCapExceeded (permanent: the same model never fits under that cap).
    """
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize  # Python ints: no overflow
    if nbytes <= cap:
        return
    size = f"{nbytes} bytes ({nbytes / 2**20:.4g} MiB)"
    cap_text = f"the worker's memory cap of {cap >> 20} MiB (settings.memory_cap_bytes)"
    if given:
        raise JobFailure(
            "InvalidSettings",
            f"input_shapes gives input {name} dims {echo(dims)}: that tensor alone is {size}, "
            f"over {cap_text}; give smaller dims",
        )
    raise JobFailure(
        "MemoryCapExceeded",
        f"the model's input {name} of shape {echo(dims)} alone is {size}, over {cap_text}",
    )


def make_feeds(inputs: Sequence[agent_pb2.TensorInfo], seed: int) -> dict[str, np.ndarray]:
    """Seeded random tensors: normal floats, small non-negative ints (safe as indices), bools."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for info in inputs:
        dtype = DTYPES[info.element_type]
        shape = tuple(info.dims)
        values: np.ndarray | np.generic | bool
        if np.issubdtype(dtype, np.floating):
            values = rng.standard_normal(shape, dtype=np.float32)
        elif dtype is np.bool_:
            values = rng.random(shape) < 0.5
        else:
            values = rng.integers(0, 4, size=shape)
        # asarray: for a 0-d shape numpy hands back scalars, which runtimes refuse
        feeds[info.name] = np.asarray(values, dtype=dtype)
    return feeds
