"""Generate the agent's paired-method reference model, ``agent/assets/reference.onnx``.

The reference is a small MobileNet-style conv net (stem conv, then blocks of
depthwise 3×3 + pointwise 1×1 convs with residual adds, global pooling and a
linear head) that takes a few milliseconds per run on one thread of a modern
x86 core. It mixes the op kinds candidate networks are made of, so slow drift
of the host (frequency, cache pressure) moves it and a candidate alike.

Weights come from an integer hash, not from a random generator, so the bytes
are identical on every platform and numpy version: the asset's sha256 is the
reference's identity, and calibrations are keyed by it.

Usage::

    python scripts/make_reference_model.py            # (re)write the asset
    python scripts/make_reference_model.py --check    # exit 1 if the asset is stale
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ASSET = Path(__file__).resolve().parent.parent / "agent" / "assets" / "reference.onnx"
OPSET = 17
IR_VERSION = 8
INPUT_SHAPE = (1, 3, 128, 128)
STEM_CHANNELS = 32
BLOCKS = ((32, 96), (32, 96), (32, 128), (32, 128), (32, 128), (32, 192))  # (channels, expanded)
CLASSES = 10


def hash_weights(salt: int, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """Deterministic pseudo-random weights, uniform in ±sqrt(3 / fan_in) (unit variance out)."""
    count = math.prod(shape)
    index = np.arange(count, dtype=np.uint64) + np.uint64(salt * 1_000_003)
    # Knuth's multiplicative hash, in exact 64-bit integer arithmetic.
    hashed = (index * np.uint64(2654435761)) % np.uint64(2**32)
    unit = hashed.astype(np.float64) / float(2**32) - 0.5  # in [-0.5, 0.5)
    scale = 2.0 * math.sqrt(3.0 / fan_in)
    return (unit * scale).astype(np.float32).reshape(shape)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._salt = 0

    def conv(self, x: str, cin: int, cout: int, k: int, *, stride: int = 1, group: int = 1) -> str:
        self._salt += 1
        n = self._salt
        w = hash_weights(n, (cout, cin // group, k, k), (cin // group) * k * k)
        self.inits.append(numpy_helper.from_array(w, f"conv{n}.w"))
        self.inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"conv{n}.b"))
        out = f"conv{n}"
        pad = k // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"conv{n}.w", f"conv{n}.b"],
                [out],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad] * 4,
                group=group,
            )
        )
        return out

    def relu(self, x: str) -> str:
        out = f"{x}.relu"
        self.nodes.append(helper.make_node("Relu", [x], [out]))
        return out


def build() -> bytes:
    """The reference model's serialized bytes (deterministic)."""
    b = _Builder()
    h = b.relu(b.conv("x", INPUT_SHAPE[1], STEM_CHANNELS, 3, stride=2))
    channels = STEM_CHANNELS
    for i, (c, expanded) in enumerate(BLOCKS):
        if c != channels:
            raise ValueError("blocks keep the channel count (residual adds)")
        e = b.relu(b.conv(h, c, expanded, 1))
        d = b.relu(b.conv(e, expanded, expanded, 3, group=expanded))
        p = b.conv(d, expanded, c, 1)
        out = f"block{i}"
        b.nodes.append(helper.make_node("Add", [h, p], [out]))
        h = out
    b.nodes.append(helper.make_node("GlobalAveragePool", [h], ["pooled"]))
    b.nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    head_w = hash_weights(999, (channels, CLASSES), channels)
    b.inits.append(numpy_helper.from_array(head_w, "head.w"))
    b.inits.append(numpy_helper.from_array(np.zeros(CLASSES, np.float32), "head.b"))
    b.nodes.append(helper.make_node("Gemm", ["flat", "head.w", "head.b"], ["y"]))
    graph = helper.make_graph(
        b.nodes,
        "fleetnas_reference_v1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(INPUT_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CLASSES])],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="fleetnas",
        doc_string="fleetnas paired-method reference model v1 (scripts/make_reference_model.py)",
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def asset_main(doc: str, asset: Path, build_bytes: Callable[[], bytes], script: str,
               argv: list[str] | None = None) -> int:  # fmt: skip
    """The command line of a reference-asset script: write the asset, or ``--check`` that it
    is what ``build_bytes`` makes (exit 1 if stale). Shared by both reference scripts."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the asset is stale")
    parser.add_argument("--output", type=Path, default=asset, help="where to write the model")
    args = parser.parse_args(argv)
    data = build_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        current = args.output.read_bytes() if args.output.exists() else b""
        if current != data:
            print(f"{args.output} is stale; run scripts/{script}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date (sha256 {digest})")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output}: {len(data)} bytes, sha256 {digest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asset_main(__doc__ or "", ASSET, build, "make_reference_model.py", argv)


if __name__ == "__main__":
    raise SystemExit(main())
