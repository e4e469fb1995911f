"""NAS-Bench-201 specifics: the arch strings, the 15,625 archs, published sizes, dead edges."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from fleetnas.controller.spaces import Block, NB201Arch, NB201Space, UnknownArch
from fleetnas.controller.spaces._nb201 import EDGES, OPS, live_edges
from fleetnas.controller.spaces._nb201_torch import Cell, make_op

SPACE = NB201Space()

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
# an arch string as printed by NAS-Bench-201's API (the best CIFAR-10 cell)
BEST_CIFAR10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_space_has_exactly_15625_archs() -> None:
    encodings = {SPACE.encode(a) for a in SPACE.archs()}
    assert len(encodings) == 15625 == SPACE.size()
    assert all(text.count("~") == 6 and text.count("+") == 2 for text in encodings)


@pytest.mark.parametrize("text", [ALL_CONV3, ALL_NONE, BEST_CIFAR10])
def test_known_strings_round_trip(text: str) -> None:
    arch = SPACE.decode(text)
    assert SPACE.encode(arch) == text


def test_edge_order_is_the_standard_one() -> None:
    arch = SPACE.decode(BEST_CIFAR10)
    assert arch.ops == (
        "nor_conv_3x3",  # 1 <- 0
        "nor_conv_3x3",  # 2 <- 0
        "nor_conv_3x3",  # 2 <- 1
        "skip_connect",  # 3 <- 0
        "nor_conv_3x3",  # 3 <- 1
        "nor_conv_3x3",  # 3 <- 2
    )


def test_published_extremes_of_params_and_flops() -> None:
    # NAS-Bench-201 (CIFAR-10): 0.07M-1.53M params, 7.8M-220M FLOPs
    assert SPACE.count_params(SPACE.decode(ALL_CONV3)) == 1_531_546
    assert SPACE.count_params(SPACE.decode(ALL_NONE)) == 73_306
    assert SPACE.count_flops(SPACE.decode(ALL_CONV3)) == 220_119_680
    assert round(SPACE.count_flops(SPACE.decode(ALL_NONE)) / 1e6, 1) == 7.8


def test_features_are_a_one_hot_per_edge() -> None:
    feats = SPACE.features(SPACE.decode(BEST_CIFAR10))
    assert len(feats) == 30 and sum(feats) == 6
    assert feats[: len(OPS)] == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_all_blocks_is_the_small_fixed_set() -> None:
    blocks = SPACE.all_blocks()
    kinds = [b.kind for b in blocks]
    assert len(blocks) == 16
    assert kinds.count("nb201.op") == 12  # 4 non-none ops x 3 stages
    assert kinds.count("nb201.reduce") == 2
    assert Block.of("nb201.op", op="nor_conv_3x3", c=64, hw=8) in blocks
    assert Block.of("nb201.head", c=64, hw=8, classes=10) in blocks
    assert all(b.param("op") != "none" for b in blocks if b.kind == "nb201.op")


def test_blocks_list_every_live_edge_of_every_cell() -> None:
    arch = SPACE.decode(BEST_CIFAR10)
    blocks = SPACE.blocks(arch)
    assert blocks[0].kind == "nb201.stem" and blocks[-1].kind == "nb201.head"
    assert len(blocks) == 1 + 3 * 5 * 6 + 2 + 1
    assert blocks[1:7] == [
        Block.of("nb201.op", op=op, c=16, hw=32)
        for op in ["nor_conv_3x3"] * 3 + ["skip_connect"] + ["nor_conv_3x3"] * 2
    ]


@pytest.mark.parametrize(
    ("text", "live"),
    [
        (ALL_NONE, []),
        (ALL_CONV3, [0, 1, 2, 3, 4, 5]),
        # node 2 feeds nothing: its input edges are dead
        (
            "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
            [0, 3, 4],
        ),
        # node 1 has no input but feeds node 3: only its output edge is built (on zeros)
        ("|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|", [4]),
        # node 1 feeds node 2, which feeds nothing: everything but 3 <- 0 is dead
        ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|", [3]),
    ],
)
def test_dead_edges_are_neither_built_nor_counted(text: str, live: list[int]) -> None:
    arch = SPACE.decode(text)
    assert live_edges(arch.ops) == live
    op_blocks = [b for b in SPACE.blocks(arch) if b.kind == "nb201.op"]
    assert len(op_blocks) == 15 * len(live)
    net = SPACE.build(arch)
    assert sum(p.numel() for p in net.parameters()) == SPACE.count_params(arch)
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def reference_forward(net: torch.nn.Module, ops: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
    """NAS-Bench-201's cell semantics without pruning: every non-none edge is computed
    (dead ones with fresh weights), every node sums its inputs, starting from zeros."""

    def cell_forward(cell: Cell, h: torch.Tensor) -> torch.Tensor:
        nodes = [h]
        for node in (1, 2, 3):
            total = torch.zeros_like(h)
            for i, (src, dst) in enumerate(EDGES):
                if dst == node and ops[i] != "none":
                    op = cell.edges[str(i)] if str(i) in cell.edges else make_op(ops[i], h.shape[1])
                    total = total + op.eval()(nodes[src])
            nodes.append(total)
        return nodes[3]

    h = net.stem(x)
    for layer in net.layers:
        h = cell_forward(layer, h) if isinstance(layer, Cell) else layer(h)
    return net.head(h)


def test_pruned_cells_compute_the_full_nb201_semantics() -> None:
    """Every one of the 64 none/other patterns of the 6 edges (other ops drawn at random)."""
    space = NB201Space(cells_per_stage=1, channels=4)
    rng = random.Random(0)
    x = torch.randn(1, 3, 32, 32)
    for pattern in itertools.product((False, True), repeat=6):
        ops = tuple(rng.choice(OPS[1:]) if used else "none" for used in pattern)
        net = space.build(NB201Arch(ops))
        for module in net.modules():  # non-trivial BN statistics, so zeros do not stay zeros
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.bias.data.uniform_(-1, 1)
        with torch.no_grad():
            assert torch.allclose(net(x), reference_forward(net, ops, x), atol=1e-5), ops


def test_configuration_changes_the_skeleton_not_the_archs() -> None:
    small = NB201Space(cells_per_stage=1, channels=8, num_classes=3)
    arch = small.decode(ALL_CONV3)
    assert arch == SPACE.decode(ALL_CONV3)
    assert small.identity() == 'nb201{"cells_per_stage":1,"channels":8,"num_classes":3}'
    assert SPACE.identity() == "nb201"
    assert len(small.blocks(arch)) == 1 + 3 * 6 + 2 + 1
    assert small.count_params(arch) < SPACE.count_params(arch)
    with pytest.raises(ValueError, match="cells_per_stage"):
        NB201Space(cells_per_stage=0)


def test_arch_values_are_validated() -> None:
    with pytest.raises(UnknownArch):
        NB201Arch(("none",) * 5)
    with pytest.raises(UnknownArch):
        NB201Arch(("conv",) * 6)
    with pytest.raises(UnknownArch):
        SPACE.encode(("none",) * 6)


def test_mutation_reaches_every_op_on_every_edge() -> None:
    rng = random.Random(0)
    arch = SPACE.decode(ALL_NONE)
    seen = [set() for _ in range(6)]
    for _ in range(500):
        arch = SPACE.mutate(arch, rng)
        for i, op in enumerate(arch.ops):
            seen[i].add(op)
    assert all(s == set(OPS) for s in seen)
