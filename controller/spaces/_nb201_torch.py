"""Torch modules of the NAS-Bench-201 space (imported only when a network is built).

Ops follow the original: ReLU-Conv-BN for ``nor_conv_*``, 3x3 average
pooling with stride 1, padding 1 and ``count_include_pad=False``, identity for
``skip_connect``. The reduction block is the ResNet basic block with stride 2
(ReLU-Conv-BN 3x3 stride 2, ReLU-Conv-BN 3x3, shortcut 2x2 average pool +
1x1 conv). Each block of :meth:`NB201Space.blocks` is one module here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fleetnas.controller.spaces._nb201 import EDGES, HEAD, OP, REDUCE, STEM


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Stem(nn.Sequential):
    def __init__(self, c: int) -> None:
        super().__init__(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))


class Reduction(nn.Module):
    """ResNet basic block with stride 2: ``shortcut(x) + conv_b(conv_a(x))``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Head(nn.Sequential):
    def __init__(self, c: int, classes: int) -> None:
        super().__init__(
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c, classes),
        )


def make_op(op: str, c: int) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"no module for op {op!r}")


class Cell(nn.Module):
    """A cell with only its live edges; ``edges[str(i)]`` is edge ``EDGES[i]``."""

    def __init__(self, ops: Sequence[str], live: Sequence[int], c: int) -> None:
        super().__init__()
        self.live = tuple(live)
        self.edges = nn.ModuleDict({str(i): make_op(ops[i], c) for i in self.live})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for node in (1, 2, 3):
            total: torch.Tensor | None = None
            for i in self.live:
                src, dst = EDGES[i]
                if dst != node:
                    continue
                value = nodes[src]
                if value is None:  # a used node without live inputs is zero
                    value = x * 0.0
                    nodes[src] = value
                out = self.edges[str(i)](value)
                total = out if total is None else total + out
            nodes[node] = total
        return nodes[3] if nodes[3] is not None else x * 0.0

    def block_modules(self) -> list[nn.Module]:
        return [self.edges[str(i)] for i in self.live]


class NB201Net(nn.Module):
    """Stem, 3 stages of cells with reductions between them, head."""

    def __init__(
        self,
        ops: Sequence[str],
        live: Sequence[int],
        *,
        cells_per_stage: int,
        channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.stem = Stem(channels)
        layers: list[nn.Module] = []
        for stage in range(3):
            c = channels * 2**stage
            if stage > 0:
                layers.append(Reduction(c // 2, c))
            layers.extend(Cell(ops, live, c) for _ in range(cells_per_stage))
        self.layers = nn.Sequential(*layers)
        self.head = Head(channels * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))

    def block_modules(self) -> list[nn.Module]:
        """The modules of the net, one per block, in ``NB201Space.blocks`` order."""
        out: list[nn.Module] = [self.stem]
        for layer in self.layers:
            out.extend(layer.block_modules() if isinstance(layer, Cell) else [layer])
        out.append(self.head)
        return out


def build_block(kind: str, p: dict[str, Any]) -> nn.Module:
    """The module of one (validated) block."""
    if kind == STEM:
        return Stem(p["c"])
    if kind == OP:
        return make_op(p["op"], p["c"])
    if kind == REDUCE:
        return Reduction(p["c_in"], p["c_out"])
    if kind == HEAD:
        return Head(p["c"], p["classes"])
    raise ValueError(f"no module for block kind {kind!r}")
