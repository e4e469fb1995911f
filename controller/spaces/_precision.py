"""Precision genes: a space wrapper whose archs carry one deployment precision per target.

:class:`PrecisionSpace` wraps any :class:`SearchSpace` so that the search
engine, its strategies and its persistence handle precision without knowing
about it: an arch is a :class:`PrecisionArch` (the wrapped space's arch plus
one precision name per target, in the order of the targets), and
``sample``/``mutate``/``crossover`` draw, flip and mix those genes alongside
the wrapped choices. Each target's gene takes only the precisions allowed for
that target.

Encoding: the wrapped encoding, ``@``, then ``KEY=PRECISION`` pairs joined by
``,`` in target order, e.g. ``|nor_conv_3x3~0|+...@pi4=int8,x86=fp32``.
:func:`split_precision_genes` reads it back without a space (the report
does). A wrapped encoding never contains ``@`` (checked on encode).

Everything about the network (``build``, ``blocks``, params, FLOPs, input
shape, identity) is the wrapped space's: precision is how a network is
*deployed*, not a different network. So ``identity()`` and
``network_identity()`` are the wrapped space's, and a stored search of a
wrapped space resumes with the same wrapper (the driver rebuilds it from the
search's config). Thread-safe: no mutable state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.spaces._base import Arch, Block, SearchSpace, UnknownArch

#: separates the wrapped encoding from the precision genes
GENE_SEPARATOR = "@"

#: chance that a mutation changes a precision gene (when one can change) instead of the arch
GENE_MUTATION_RATE = 0.3


@dataclass(frozen=True)
class PrecisionArch:
    """An arch of the wrapped space and one precision name per target (target order)."""

    arch: Arch
    precisions: tuple[str, ...]


def split_precision_genes(encoding: str) -> tuple[str, dict[str, str]]:
    """``(wrapped encoding, {target key: precision})``; ``{}`` for an encoding without genes."""
    base, sep, genes = encoding.rpartition(GENE_SEPARATOR)
    if not sep:
        return encoding, {}
    out: dict[str, str] = {}
    for item in genes.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            return encoding, {}
        out[key] = value
    return base, out


class PrecisionSpace(SearchSpace):
    """``base`` with one precision gene per target (see the module docstring).

    ``genes`` maps each target key, in target order, to its allowed
    precision names (non-empty, no repeats). Raises ValueError otherwise.
    """

    def __init__(self, base: SearchSpace, genes: Mapping[str, Sequence[str]]) -> None:
        if isinstance(base, PrecisionSpace):
            raise ValueError("a PrecisionSpace cannot wrap another")
        if not genes:
            raise ValueError("precision genes: expected at least one target")
        for key, allowed in genes.items():
            if not allowed or len(set(allowed)) != len(allowed):
                raise ValueError(f"precision gene of {key!r}: {list(allowed)!r}, expected "
                                 "distinct names")
            if GENE_SEPARATOR in key or "," in key or "=" in key:
                raise ValueError(f"precision gene of {key!r}: a key may not hold @ , or =")
        self.base = base
        self.name = base.name
        self.version = base.version
        self.sampling_only_options = base.sampling_only_options
        self.keys: tuple[str, ...] = tuple(genes)
        self.allowed: tuple[tuple[str, ...], ...] = tuple(tuple(v) for v in genes.values())

    # -- what is the wrapped space's -------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def features(self, arch: Arch) -> Sequence[float]:
        a = self._check(arch)
        genes = [float(allowed.index(p)) for p, allowed in zip(a.precisions, self.allowed, strict=True)]
        return [*self.base.features(a.arch), *genes]

    def count_params(self, arch: Arch) -> int:
        return self.base.count_params(self._check(arch).arch)

    def count_flops(self, arch: Arch) -> int:
        return self.base.count_flops(self._check(arch).arch)

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        return self.base.input_shape(self._check(arch).arch)

    def build(self, arch: Arch) -> Any:
        return self.base.build(self._check(arch).arch)

    def blocks(self, arch: Arch) -> list[Block]:
        return self.base.blocks(self._check(arch).arch)

    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        return self.base.build_block(block)

    def all_blocks(self) -> list[Block]:
        return self.base.all_blocks()

    def size(self) -> int | None:
        n = self.base.size()
        if n is None:
            return None
        for allowed in self.allowed:
            n *= len(allowed)
        return n

    # -- genes -------------------------------------------------------------------------------

    def precision_of(self, arch: Arch, key: str) -> str:
        """The precision of target ``key`` in ``arch``; KeyError for another key."""
        return self._check(arch).precisions[self.keys.index(key)]

    def genes_of(self, arch: Arch) -> dict[str, str]:
        return dict(zip(self.keys, self._check(arch).precisions, strict=True))

    def sample(self, rng: random.Random) -> Arch:
        arch = self.base.sample(rng)
        return PrecisionArch(arch, tuple(rng.choice(allowed) for allowed in self.allowed))

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        a = self._check(arch)
        mutable = [i for i, allowed in enumerate(self.allowed) if len(allowed) > 1]
        if mutable and rng.random() < GENE_MUTATION_RATE:
            i = rng.choice(mutable)
            others = [p for p in self.allowed[i] if p != a.precisions[i]]
            genes = list(a.precisions)
            genes[i] = rng.choice(others)
            return PrecisionArch(a.arch, tuple(genes))
        return PrecisionArch(self.base.mutate(a.arch, rng), a.precisions)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        pa, pb = self._check(a), self._check(b)
        genes = tuple(x if rng.random() < 0.5 else y for x, y in zip(pa.precisions, pb.precisions, strict=True))
        return PrecisionArch(self.base.crossover(pa.arch, pb.arch, rng), genes)

    def encode(self, arch: Arch) -> str:
        a = self._check(arch)
        base = self.base.encode(a.arch)
        if GENE_SEPARATOR in base:
            raise UnknownArch(f"space {self.name}: encoding {base!r} holds {GENE_SEPARATOR!r}")
        genes = ",".join(f"{k}={p}" for k, p in zip(self.keys, a.precisions, strict=True))
        return f"{base}{GENE_SEPARATOR}{genes}"

    def decode(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise UnknownArch(f"not an arch string: {text!r}")
        base, genes = split_precision_genes(text)
        if list(genes) != list(self.keys):
            raise UnknownArch(f"{text!r}: expected precision genes for {', '.join(self.keys)}")
        for key, allowed in zip(self.keys, self.allowed, strict=True):
            if genes[key] not in allowed:
                raise UnknownArch(f"{text!r}: precision {genes[key]!r} is not allowed on "
                                  f"{key} ({'|'.join(allowed)})")
        return PrecisionArch(self.base.decode(base), tuple(genes[k] for k in self.keys))

    def _check(self, arch: Arch) -> PrecisionArch:
        if not isinstance(arch, PrecisionArch) or len(arch.precisions) != len(self.keys):
            raise UnknownArch(f"not an arch with precision genes for {', '.join(self.keys)}: "
                              f"{arch!r}")
        return arch
