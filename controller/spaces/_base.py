"""The search-space contract shared by LUTs, predictors and the search engine.

A search space is a set of architectures ("archs") with a stable string
encoding. Implementations subclass :class:`SearchSpace`; every method below is
abstract and documented as a contract, so the engine and the LUT builder can
treat all spaces alike.

Archs are opaque, immutable, hashable values owned by the space (typically a
frozen dataclass or tuple). Callers only pass them back to the same space.
Randomness always comes from the ``random.Random`` the caller passes: the same
seed gives the same archs on every platform.

A space's identity is its ``name`` plus its :meth:`SearchSpace.config` (the
constructor options that differ from the defaults): the same encoding names
the same network only within one identity, so caches and the cost DB key
archs by :meth:`SearchSpace.identity` and encoding (and derived caches add the
class's ``version``). Block keys are complete on their own:
:meth:`SearchSpace.build_block` depends on the block alone, never on the
instance's options.

Some options only choose which archs a space contains (e.g. mbv3's
``width_choices``), never what an encoding builds: those are listed in
:attr:`SearchSpace.sampling_only_options` and left out of
:meth:`SearchSpace.network_identity`, the name under which an encoding's
*network* (its weights, its ONNX bytes) is keyed.
"""

from __future__ import annotations

import abc
import json
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

Arch = Hashable


class UnknownArch(ValueError):
    """An encoding (or arch value) that does not belong to this space."""


class UnknownBlock(ValueError):
    """A block (LUT key) that no arch of this space can contain."""


@dataclass(frozen=True, order=True)
class Block:
    """One distinct unit of cost in an arch: the key of a latency LUT entry.

    ``kind`` names the block type, prefixed by the space that defines it
    (e.g. ``"mbv3.mbconv"``, ``"nb201.op"``, ``"mbv3.stem"``); ``params``
    holds every parameter that changes its cost, input shape included, as
    sorted ``(name, value)`` pairs of JSON-safe scalars or tuples. Two
    blocks with equal keys cost the same on a device.
    """

    kind: str
    params: tuple[tuple[str, Any], ...]

    @property
    def key(self) -> str:
        """Stable text key, one-to-one with the block within a space.

        E.g. ``mbv3.mbconv|act=relu|c_in=24|c_out=40|expand=4|hw=56|kernel=5|se=True|stride=2``.
        """
        parts = [self.kind] + [f"{k}={_fmt(v)}" for k, v in self.params]
        return "|".join(parts)

    @classmethod
    def of(cls, kind: str, **params: Any) -> Block:
        return cls(kind, tuple(sorted(params.items())))

    def param(self, name: str) -> Any:
        for k, v in self.params:
            if k == name:
                return v
        raise KeyError(name)


def _identity(name: str, config: dict[str, Any]) -> str:
    if not config:
        return name
    return name + json.dumps(config, sort_keys=True, separators=(",", ":"))


def _fmt(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


class SearchSpace(abc.ABC):
    """Contract of a search space. Thread-safe: implementations hold no mutable state."""

    #: registry name, e.g. ``"nb201"``; stable, used in the cost DB and on the CLI
    name: str

    #: bump when an encoding starts to build a different network or a block key
    #: a different module; part of every cache key derived from the space
    version: int = 1

    def config(self) -> dict[str, Any]:
        """The JSON-safe constructor options that differ from their defaults.

        ``get_space(self.name, self.config())`` builds an equal space. Spaces
        without options keep this default (``{}``); spaces with options must
        override it, or two differently configured instances would share
        cache entries.
        """
        return {}

    #: names of :meth:`config` options that only choose which archs the space
    #: contains (what sample/mutate/crossover reach, what decode accepts, hence
    #: all_blocks and size), never the network an encoding decodable under them
    #: builds; :meth:`network_identity` leaves them out
    sampling_only_options: frozenset[str] = frozenset()

    def identity(self) -> str:
        """``name`` for a default-configured space, else ``name`` + canonical JSON config.

        E.g. ``mbv3`` or ``mbv3{"resolutions":[96,128],"width_mult":0.5}``. Every
        option counts, sampling-only ones too: the identity keys what depends on
        the set of archs (a LUT's blocks, a search's state, the searches table).
        """
        return _identity(self.name, self.config())

    def network_identity(self) -> str:
        """:meth:`identity` without the :attr:`sampling_only_options`: the namespace of networks.

        What an encoding builds under this space, its weights' seed and ONNX
        bytes, are keyed by ``network_identity()`` and the encoding (the
        ``space`` of an arch's model in the cost DB). Sound because a
        sampling-only option is by definition no input of ``build`` or
        ``blocks`` for an arch: two spaces that differ only in such options
        build the same network for every encoding both decode, and an encoding
        only one of them decodes names no other network under this name. So a
        space that merely allows more archs keeps the bytes, sha256 and
        measurement history of the archs it shares with the narrower one.

        It must not replace :meth:`identity` where the *set* of archs matters:
        a LUT keyed by it would count as complete for a space whose extra
        blocks it lacks, and a search's state would pass the identity check of
        a space that cannot decode its archs.
        """
        config = {k: v for k, v in self.config().items() if k not in self.sampling_only_options}
        return _identity(self.name, config)

    @abc.abstractmethod
    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random arch of the space (uniform over the space's choices)."""

    @abc.abstractmethod
    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A neighbour of ``arch`` inside the space, differing in at least one choice."""

    @abc.abstractmethod
    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """A child inside the space whose every choice comes from ``a`` or ``b``."""

    @abc.abstractmethod
    def encode(self, arch: Arch) -> str:
        """Stable, human-readable string of ``arch``; ``decode(encode(a)) == a``."""

    @abc.abstractmethod
    def decode(self, text: str) -> Arch:
        """Inverse of :meth:`encode`. Raises UnknownArch for text outside the space."""

    @abc.abstractmethod
    def features(self, arch: Arch) -> Sequence[float]:
        """A fixed-length numeric vector of the arch's choices (for surrogates)."""

    @abc.abstractmethod
    def count_params(self, arch: Arch) -> int:
        """Number of trainable parameters of the built network."""

    @abc.abstractmethod
    def count_flops(self, arch: Arch) -> int:
        """Multiply-accumulates of one forward pass at the arch's input shape."""

    @abc.abstractmethod
    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        """The network's input shape, batch dim included (e.g. ``(1, 3, 224, 224)``)."""

    @abc.abstractmethod
    def build(self, arch: Arch) -> Any:
        """A ``torch.nn.Module`` in eval mode implementing ``arch`` (imports torch lazily)."""

    @abc.abstractmethod
    def blocks(self, arch: Arch) -> list[Block]:
        """The blocks the built network is made of, as LUT keys (repeats included).

        Every module of the built network belongs to exactly one block, so the
        sum of the blocks' latencies is the LUT prediction of the whole (before
        per-device calibration). Blocks need not be sequential: a cell's
        parallel edges are separate blocks.
        """

    @abc.abstractmethod
    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        """``(module, input_shape)`` for one block alone, built as in :meth:`build`.

        Depends on ``block`` only (not on the instance's options), so a block
        key names one module whatever space instance built it. Raises
        UnknownBlock for a block this space cannot contain.
        """

    @abc.abstractmethod
    def all_blocks(self) -> list[Block]:
        """Every distinct block any arch of the space can contain (the LUT to build)."""

    def size(self) -> int | None:
        """Number of archs, when it is practical to state; None otherwise."""
        return None
