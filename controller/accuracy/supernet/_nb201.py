"""The NAS-Bench-201 supernet: every candidate op on every edge of every cell.

The skeleton is the space's (:class:`~fleetnas.controller.spaces.NB201Space`):
the same stem, stages of ``cells_per_stage`` cells at C, 2C, 4C channels,
residual reductions and head, built from the space's own modules, with a
``num_classes``-way classifier. Each cell holds, per edge, one module per op
(``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``;
``none`` is no module). Subnet ``arch`` runs, in every cell, the op it
names on each live edge (:func:`~fleetnas.controller.spaces._nb201.live_edges`;
the space builds no dead edge either), so every cell of the subnet shares
the same edge modules with every other subnet that picks the same op there,
while different cells keep their own weights (as in the stand-alone network).

Trained by default with uniform single-path sampling (Guo et al. 2020, "Single
Path One-Shot"; the NAS-Bench-201 paper's SPOS baseline): each step one arch
drawn uniformly from the 15,625.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.spaces import NB201Arch, NB201Space, UnknownArch
from fleetnas.controller.spaces._nb201 import EDGES, OPS, live_edges
from fleetnas.controller.spaces._nb201_torch import Cell, Head, NB201Net, Reduction, Stem, make_op

#: ops with a module (``none`` is the absence of an edge)
EDGE_OPS: tuple[str, ...] = tuple(op for op in OPS if op != "none")


class SuperCell(nn.Module):
    """A cell holding every op on every edge: ``candidates[i][op]`` is edge ``EDGES[i]``'s ``op``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(
            nn.ModuleDict({op: make_op(op, c) for op in EDGE_OPS}) for _ in EDGES
        )

    def forward(self, x: torch.Tensor, ops: Sequence[str], live: Sequence[int]) -> torch.Tensor:
        """The cell with ``ops`` on its ``live`` edges, computed like the space's ``Cell``."""
        nodes: dict[int, torch.Tensor] = {0: x}
        for node in (1, 2, 3):
            inputs = [i for i in live if EDGES[i][1] == node]
            total: torch.Tensor | None = None
            for i in inputs:
                src = EDGES[i][0]
                if src not in nodes:  # a used node without live inputs is zero
                    nodes[src] = x * 0.0
                out = self.op(i, ops[i])(nodes[src])
                total = out if total is None else total + out
            if total is not None:
                nodes[node] = total
        return nodes[3] if 3 in nodes else x * 0.0

    def op(self, edge: int, op: str) -> nn.Module:
        """The shared module of ``op`` on edge ``EDGES[edge]``."""
        return cast(nn.ModuleDict, self.candidates[edge])[op]

    def copy_into(self, cell: Cell, ops: Sequence[str]) -> None:
        """Copy the shared modules of ``ops`` into a stand-alone cell (its live edges)."""
        for i in cell.live:
            cell.edges[str(i)].load_state_dict(self.op(i, ops[i]).state_dict())


class NB201Supernet(Supernet):
    """Weight-sharing NAS-Bench-201 network (see module doc).

    ``largest()`` has ``nor_conv_3x3`` on every edge; ``smallest()`` has
    ``skip_connect`` on every edge: no cell parameters, yet a connected
    network (an all-``none`` cell would cut the stem off the head).
    """

    kind: ClassVar[str] = "nb201"
    default_sampling: ClassVar[str] = "uniform"

    def __init__(self, space: NB201Space, num_classes: int) -> None:
        if not isinstance(space, NB201Space):
            raise TypeError(f"NB201Supernet needs an NB201Space, got {type(space).__name__}")
        super().__init__(space, num_classes)
        self.nb201 = space
        c = space.channels
        self.stem = Stem(c)
        layers: list[nn.Module] = []
        for stage in range(3):
            width = c * 2**stage
            if stage > 0:
                layers.append(Reduction(width // 2, width))
            layers.extend(SuperCell(width) for _ in range(space.cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.head = Head(c * 4, num_classes)

    def _ops(self, arch: Any) -> tuple[str, ...]:
        if not isinstance(arch, NB201Arch):
            raise UnknownArch(f"not a NAS-Bench-201 arch: {arch!r}")
        return arch.ops

    def forward(self, x: torch.Tensor, arch: Any) -> torch.Tensor:  # type: ignore[override]
        ops = self._ops(arch)
        live = live_edges(ops)
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h, ops, live) if isinstance(layer, SuperCell) else layer(h)
        return self.head(h)  # type: ignore[no-any-return]

    def largest(self) -> NB201Arch:
        return NB201Arch(("nor_conv_3x3",) * len(EDGES))

    def smallest(self) -> NB201Arch:
        return NB201Arch(("skip_connect",) * len(EDGES))

    def _copy_into(self, module: nn.Module, arch: Any) -> None:
        ops = self._ops(arch)
        assert isinstance(module, NB201Net)
        module.stem.load_state_dict(self.stem.state_dict())
        for mine, theirs in zip(self.layers, module.layers, strict=True):
            if isinstance(mine, SuperCell):
                mine.copy_into(cast(Cell, theirs), ops)
            else:
                theirs.load_state_dict(mine.state_dict())
        module.head.load_state_dict(self.head.state_dict())
