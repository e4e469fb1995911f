"""The NAS-Bench-201 cell space: 5 ops on the 6 edges of a 4-node cell.

An arch is the op of each edge, in the order of the standard arch string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1 <- 0; node 2 <- 0, 1;
node 3 <- 0, 1, 2). The macro skeleton is NAS-Bench-201's for 32x32 inputs:
stem (3x3 conv + BN), three stages of ``cells_per_stage`` cells at C, 2C, 4C
channels with a residual reduction block (ResNet basic block, stride 2)
between stages, then BN-ReLU, global average pooling and a linear classifier.

Dead edges: an edge whose destination node never reaches the cell output
(through non-``none`` edges) cannot change the output; ONNX export would drop
it anyway, so :meth:`NB201Space.build` omits it, and neither
:meth:`~NB201Space.blocks` nor the counts include it. ``none`` edges are never
built and are not blocks. A node that is used but has no live input edge is a
zero tensor (``x * 0``), as in the original. Node sums, those zero tensors and
the identity edges' adds are parameter-free glue of negligible cost: they are
not blocks, and the per-device calibration of the LUT absorbs them.

This module does not import torch; :meth:`NB201Space.build` does, lazily.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.spaces._base import Block, SearchSpace, UnknownArch, UnknownBlock

#: the operations, in the order of the one-hot features
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: the edges ``(source, destination)`` in arch-string order
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: the input resolution of the standard skeleton
INPUT_HW = 32

STEM = "nb201.stem"
OP = "nb201.op"
REDUCE = "nb201.reduce"
HEAD = "nb201.head"

_CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@dataclass(frozen=True)
class NB201Arch:
    """The op of each of the 6 edges, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if (
            not isinstance(self.ops, tuple)
            or len(self.ops) != len(EDGES)
            or any(op not in OPS for op in self.ops)
        ):
            raise UnknownArch(f"not a NAS-Bench-201 arch: {self.ops!r}")


def live_edges(ops: Sequence[str]) -> list[int]:
    """Indices of the edges that are built: not ``none`` and reaching the cell output."""
    reaches = {3}
    for node in (2, 1):
        if any(
            src == node and dst in reaches and ops[i] != "none"
            for i, (src, dst) in enumerate(EDGES)
        ):
            reaches.add(node)
    return [i for i, (_, dst) in enumerate(EDGES) if ops[i] != "none" and dst in reaches]


class NB201Space(SearchSpace):
    """NAS-Bench-201's cell space (15,625 archs) on its standard 32x32 skeleton.

    ``cells_per_stage`` (N, default 5), ``channels`` (C of the first stage,
    default 16) and ``num_classes`` (default 10) configure the skeleton; they
    never change which archs exist, only what they build.
    """

    name = "nb201"
    DEFAULTS: dict[str, int] = {"cells_per_stage": 5, "channels": 16, "num_classes": 10}

    def __init__(self, *, cells_per_stage: int = 5, channels: int = 16, num_classes: int = 10):
        for label, value in (
            ("cells_per_stage", cells_per_stage),
            ("channels", channels),
            ("num_classes", num_classes),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.cells_per_stage = cells_per_stage
        self.channels = channels
        self.num_classes = num_classes
        # (params, MACs) of each block this space's blocks() made: a few dozen distinct ones,
        # counted for every arch a search proposes (its surrogate's features)
        self._block_costs: dict[Block, tuple[int, int]] = {}

    # --- identity -----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        values = {
            "cells_per_stage": self.cells_per_stage,
            "channels": self.channels,
            "num_classes": self.num_classes,
        }
        return {k: v for k, v in values.items() if v != self.DEFAULTS[k]}

    def size(self) -> int:
        return len(OPS) ** len(EDGES)

    def archs(self) -> Iterator[NB201Arch]:
        """Every arch of the space, in a fixed order."""
        for ops in itertools.product(OPS, repeat=len(EDGES)):
            yield NB201Arch(ops)

    # --- sampling -----------------------------------------------------------
    def sample(self, rng: random.Random) -> NB201Arch:
        return NB201Arch(tuple(rng.choice(OPS) for _ in EDGES))

    def mutate(self, arch: Any, rng: random.Random) -> NB201Arch:
        ops = list(self._check(arch).ops)
        edge = rng.randrange(len(EDGES))
        ops[edge] = rng.choice([op for op in OPS if op != ops[edge]])
        return NB201Arch(tuple(ops))

    def crossover(self, a: Any, b: Any, rng: random.Random) -> NB201Arch:
        pa, pb = self._check(a).ops, self._check(b).ops
        return NB201Arch(tuple(x if rng.random() < 0.5 else y for x, y in zip(pa, pb, strict=True)))

    # --- encoding -----------------------------------------------------------
    def encode(self, arch: Any) -> str:
        ops = self._check(arch).ops
        nodes = []
        for dst in (1, 2, 3):
            items = [f"{ops[i]}~{src}" for i, (src, d) in enumerate(EDGES) if d == dst]
            nodes.append("|" + "|".join(items) + "|")
        return "+".join(nodes)

    def decode(self, text: str) -> NB201Arch:
        if not isinstance(text, str):
            raise UnknownArch(f"not an arch string: {text!r}")
        ops: list[str] = []
        for item in text.replace("+", "|").split("|"):
            if item:
                ops.append(item.partition("~")[0])
        try:
            arch = NB201Arch(tuple(ops))
        except UnknownArch:
            raise UnknownArch(f"not a NAS-Bench-201 arch string: {text!r}") from None
        # The strictest check: the text must be exactly the canonical string.
        if self.encode(arch) != text:
            raise UnknownArch(f"not a NAS-Bench-201 arch string: {text!r}")
        return arch

    def features(self, arch: Any) -> list[float]:
        """One-hot of each edge's op in :data:`OPS` order: 6 x 5 = 30 floats."""
        ops = self._check(arch).ops
        return [1.0 if op == choice else 0.0 for op in ops for choice in OPS]

    # --- the network ----------------------------------------------------------
    def input_shape(self, arch: Any) -> tuple[int, ...]:
        self._check(arch)
        return (1, 3, INPUT_HW, INPUT_HW)

    def stage_shapes(self) -> list[tuple[int, int]]:
        """``(channels, hw)`` of each of the 3 stages."""
        return [(self.channels * 2**s, INPUT_HW // 2**s) for s in range(3)]

    def blocks(self, arch: Any) -> list[Block]:
        """Stem; per cell its live edges in edge order; a reduction between stages; head."""
        ops = self._check(arch).ops
        live = live_edges(ops)
        shapes = self.stage_shapes()
        out = [Block.of(STEM, c=self.channels, hw=INPUT_HW)]
        for stage, (c, hw) in enumerate(shapes):
            if stage > 0:
                c_in, hw_in = shapes[stage - 1]
                out.append(Block.of(REDUCE, c_in=c_in, c_out=c, hw=hw_in))
            cell = [Block.of(OP, op=ops[i], c=c, hw=hw) for i in live]
            out.extend(cell * self.cells_per_stage)
        c, hw = shapes[-1]
        out.append(Block.of(HEAD, c=c, hw=hw, classes=self.num_classes))
        return out

    def all_blocks(self) -> list[Block]:
        shapes = self.stage_shapes()
        found = {Block.of(STEM, c=self.channels, hw=INPUT_HW)}
        for stage, (c, hw) in enumerate(shapes):
            found.update(Block.of(OP, op=op, c=c, hw=hw) for op in OPS if op != "none")
            if stage > 0:
                c_in, hw_in = shapes[stage - 1]
                found.add(Block.of(REDUCE, c_in=c_in, c_out=c, hw=hw_in))
        c, hw = shapes[-1]
        found.add(Block.of(HEAD, c=c, hw=hw, classes=self.num_classes))
        return sorted(found)

    def count_params(self, arch: Any) -> int:
        return sum(self._block_cost(b)[0] for b in self.blocks(arch))

    def count_flops(self, arch: Any) -> int:
        """MACs of the convolutions and the classifier (see :func:`block_flops`)."""
        return sum(self._block_cost(b)[1] for b in self.blocks(arch))

    def _block_cost(self, block: Block) -> tuple[int, int]:
        """``(block_params, block_flops)`` of a block from :meth:`blocks` (cached: those
        blocks are valid and their params plain ints and op names)."""
        cost = self._block_costs.get(block)
        if cost is None:
            cost = self._block_costs[block] = (block_params(block), block_flops(block))
        return cost

    def build(self, arch: Any) -> Any:
        """The network; ``net.block_modules()`` lists its modules in :meth:`blocks` order."""
        from fleetnas.controller.spaces._nb201_torch import NB201Net

        ops = self._check(arch).ops
        return NB201Net(
            ops,
            live_edges(ops),
            cells_per_stage=self.cells_per_stage,
            channels=self.channels,
            num_classes=self.num_classes,
        ).eval()

    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        from fleetnas.controller.spaces._nb201_torch import build_block

        p = _block_params(block)
        c_in: int = 3 if block.kind == STEM else p["c_in"] if block.kind == REDUCE else p["c"]
        return build_block(block.kind, p).eval(), (1, c_in, p["hw"], p["hw"])

    def _check(self, arch: Any) -> NB201Arch:
        if not isinstance(arch, NB201Arch):
            raise UnknownArch(f"not a NAS-Bench-201 arch: {arch!r}")
        return arch


_SHAPES: dict[str, frozenset[str]] = {
    STEM: frozenset({"c", "hw"}),
    OP: frozenset({"op", "c", "hw"}),
    REDUCE: frozenset({"c_in", "c_out", "hw"}),
    HEAD: frozenset({"c", "hw", "classes"}),
}


def _block_params(block: Block) -> dict[str, Any]:
    """The block's params as a dict, or UnknownBlock when it is not an NB201 block."""
    names = _SHAPES.get(block.kind)
    params = dict(block.params)
    if names is None or set(params) != names or len(params) != len(block.params):
        raise UnknownBlock(f"not a NAS-Bench-201 block: {block.key}")
    for name, value in params.items():
        if name == "op":
            if value not in OPS or value == "none":
                raise UnknownBlock(f"not a NAS-Bench-201 block: {block.key}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnknownBlock(f"not a NAS-Bench-201 block: {block.key}")
    if block.kind == REDUCE and params["hw"] % 2:
        raise UnknownBlock(f"reduction needs an even input size: {block.key}")
    return params


def block_params(block: Block) -> int:
    """Trainable parameters of one NAS-Bench-201 block (BN weight and bias count)."""
    p = _block_params(block)
    if block.kind == STEM:
        return 3 * 9 * p["c"] + 2 * p["c"]
    if block.kind == OP:
        k = _CONV_KERNEL.get(p["op"])
        return 0 if k is None else k * k * p["c"] ** 2 + 2 * p["c"]
    if block.kind == REDUCE:
        ci, co = p["c_in"], p["c_out"]
        return (9 * ci * co + 2 * co) + (9 * co * co + 2 * co) + ci * co
    return 2 * p["c"] + p["c"] * p["classes"] + p["classes"]


def block_flops(block: Block) -> int:
    """MACs of one block: convolutions and the linear layer only.

    Pooling, BN, activations and adds are not counted (BN folds into the conv
    on export; the rest is memory-bound and small).
    """
    p = _block_params(block)
    if block.kind == STEM:
        return 3 * 9 * p["c"] * p["hw"] ** 2
    if block.kind == OP:
        k = _CONV_KERNEL.get(p["op"])
        return 0 if k is None else k * k * p["c"] ** 2 * p["hw"] ** 2
    if block.kind == REDUCE:
        ci, co, hw_out = p["c_in"], p["c_out"], p["hw"] // 2
        return (9 * ci * co + 9 * co * co + ci * co) * hw_out**2
    return p["c"] * p["classes"]
