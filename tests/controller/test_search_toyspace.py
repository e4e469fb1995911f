"""A toy search space for the search-engine tests, and checks that it honours the SearchSpace contract.

``ToySpace(genes, choices)``: an arch is a tuple of ``genes`` integers in
``range(choices)``. ``zdt1`` maps an arch to a discretised ZDT1 problem
(two conflicting objectives; the Pareto front needs every gene but the first
at 0, which random sampling almost never hits).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from fleetnas.controller.spaces._base import Block, SearchSpace, UnknownArch

Genes = tuple[int, ...]


class ToySpace(SearchSpace):
    """Integer vectors; uniform sampling, one-gene mutation, uniform crossover."""

    name = "toy"

    def __init__(self, genes: int = 8, choices: int = 8) -> None:
        self.genes = genes
        self.choices = choices

    def sample(self, rng: random.Random) -> Genes:
        return tuple(rng.randrange(self.choices) for _ in range(self.genes))

    def mutate(self, arch: Any, rng: random.Random) -> Genes:
        genes = list(arch)
        i = rng.randrange(self.genes)
        genes[i] = rng.choice([v for v in range(self.choices) if v != genes[i]])
        return tuple(genes)

    def crossover(self, a: Any, b: Any, rng: random.Random) -> Genes:
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True))

    def encode(self, arch: Any) -> str:
        return "-".join(str(v) for v in arch)

    def decode(self, text: str) -> Genes:
        try:
            arch = tuple(int(v) for v in text.split("-"))
        except ValueError:
            raise UnknownArch(text) from None
        if len(arch) != self.genes or any(not 0 <= v < self.choices for v in arch):
            raise UnknownArch(text)
        return arch

    def features(self, arch: Any) -> Sequence[float]:
        return [float(v) for v in arch]

    def count_params(self, arch: Any) -> int:
        return 10 * sum(arch) + 1

    def count_flops(self, arch: Any) -> int:
        return 100 * sum(arch) + 1

    def input_shape(self, arch: Any) -> tuple[int, ...]:
        return (1, self.genes)

    def build(self, arch: Any) -> Any:
        import torch

        return torch.nn.Sequential(torch.nn.Linear(self.genes, sum(arch) + 1)).eval()

    def blocks(self, arch: Any) -> list[Block]:
        return [Block.of("gene", index=i, value=v) for i, v in enumerate(arch)]

    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        import torch

        return torch.nn.Identity(), (1, 1)

    def all_blocks(self) -> list[Block]:
        return [
            Block.of("gene", index=i, value=v)
            for i in range(self.genes)
            for v in range(self.choices)
        ]

    def size(self) -> int:
        return self.choices**self.genes


def zdt1(space: ToySpace, arch: Genes) -> dict[str, float]:
    """Discretised ZDT1: minimise f1 and f2; the front is f2 = 1 - sqrt(f1) at g = 1."""
    top = space.choices - 1
    f1 = arch[0] / top
    g = 1.0 + 9.0 * sum(arch[1:]) / ((space.genes - 1) * top)
    return {"f1": f1, "f2": g * (1.0 - math.sqrt(f1 / g))}


class TestToySpaceContract:
    def test_encode_decode_round_trip(self) -> None:
        space, rng = ToySpace(), random.Random(0)
        for _ in range(50):
            arch = space.sample(rng)
            assert space.decode(space.encode(arch)) == arch

    def test_decode_refuses_foreign_text(self) -> None:
        with pytest.raises(UnknownArch):
            ToySpace().decode("1-2-x")
        with pytest.raises(UnknownArch):
            ToySpace(genes=2).decode("1-2-3")

    def test_mutate_changes_a_choice_and_crossover_mixes_parents(self) -> None:
        space, rng = ToySpace(), random.Random(1)
        for _ in range(50):
            a, b = space.sample(rng), space.sample(rng)
            assert space.mutate(a, rng) != a
            child = space.crossover(a, b, rng)
            assert all(c in (x, y) for c, x, y in zip(child, a, b, strict=True))

    def test_zdt1_front_is_reached_at_zero_tail(self) -> None:
        space = ToySpace()
        best = zdt1(space, (7,) + (0,) * 7)
        assert best == {"f1": 1.0, "f2": 0.0}
        worse = zdt1(space, (7,) + (1,) + (0,) * 6)
        assert worse["f2"] > 0.0
