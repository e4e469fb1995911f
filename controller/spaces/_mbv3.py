"""An OFA/MobileNetV3-style space: elastic kernel, expand ratio, depth and resolution.

The skeleton is OFA's MobileNetV3-Large (``ofa_mbv3_d234_e346_k357``), widths
scaled by ``width_mult`` and rounded to multiples of 8:

=========  =====  ======  ======  ====  ==========================
part       width  stride  act     SE    choices
=========  =====  ======  ======  ====  ==========================
stem       16     2       hswish  no    3x3 conv + BN
first      16     1       relu    no    MBConv k3 e1 (residual)
stage 1    24     2       relu    no    depth 2-4; k 3/5/7; e 3/4/6
stage 2    40     2       relu    yes   "
stage 3    80     2       hswish  no    "
stage 4    112    1       hswish  yes   "
stage 5    160    2       hswish  yes   "
head       960 -> pool -> 1280 -> classes (1x1 conv+BN+hswish,
           global average pool, 1x1 conv+hswish, linear)
=========  =====  ======  ======  ====  ==========================

An MBConv block is: 1x1 expand conv + BN + act (absent when expand is 1),
kxk depthwise conv (stride on the stage's first block) + BN + act, optional
squeeze-excite (on the expanded width, reduction 4 rounded to 8, ReLU and
hard sigmoid), 1x1 projection + BN, and a residual add when the stride is 1
and the widths match. The mid width is ``make_divisible(round(c_in * expand))``.

An arch is the input resolution and, per stage, the ``(kernel, expand)`` of
each active block; its encoding is e.g. ``r160|k3e4,k5e6|k7e3,k3e3,k3e3|...``
(resolution, then one ``|``-separated group per stage).

Width is a gene when the space is built with several ``width_choices``
(e.g. ``(0.5, 0.75, 1.0)``): each stage then picks a multiplier ``w`` on top
of ``width_mult``, its blocks get ``make_divisible(width * width_mult * w)``
output channels (stem, first block and head stay fixed, as in OFA), and the
stage's group carries a ``w0.75:`` prefix, omitted at 1.0, so that an arch
of the default space has the same encoding in every space.

This module does not import torch; :meth:`MobileNetV3Space.build` does, lazily.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.spaces._base import Block, SearchSpace, UnknownArch, UnknownBlock

KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANDS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)
ACTS: tuple[str, ...] = ("relu", "hswish")


@dataclass(frozen=True)
class StageSpec:
    """A stage of the skeleton at width multiplier 1."""

    width: int
    stride: int
    act: str
    se: bool


STAGES: tuple[StageSpec, ...] = (
    StageSpec(24, 2, "relu", False),
    StageSpec(40, 2, "relu", True),
    StageSpec(80, 2, "hswish", False),
    StageSpec(112, 1, "hswish", True),
    StageSpec(160, 2, "hswish", True),
)
STEM_WIDTH = 16
FIRST_WIDTH = 16
FINAL_EXPAND_WIDTH = 960
FEATURE_WIDTH = 1280
MAX_DEPTH = max(DEPTHS)

STEM = "mbv3.stem"
MBCONV = "mbv3.mbconv"
HEAD = "mbv3.head"

_STAGE_RE = re.compile(r"(?:w(\d+\.\d+):)?(k\de\d(?:,k\de\d)*)")
_BLOCK_RE = re.compile(r"k(\d)e(\d)")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, losing at most 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out(hw: int, stride: int) -> int:
    """Output size of an odd-kernel 'same'-padded conv."""
    return (hw - 1) // stride + 1


#: the stage widths of an arch that does not choose them: the skeleton's
FULL_WIDTHS: tuple[float, ...] = (1.0,) * len(STAGES)
#: the range of a width choice (its text then never needs an exponent)
MIN_WIDTH, MAX_WIDTH = 0.05, 4.0


@dataclass(frozen=True)
class MBv3Arch:
    """Input resolution, per stage the ``(kernel, expand)`` of each active block, and
    per stage a width multiplier (1.0: the skeleton's width, the default)."""

    resolution: int
    stages: tuple[tuple[tuple[int, int], ...], ...]
    widths: tuple[float, ...] = FULL_WIDTHS


class MobileNetV3Space(SearchSpace):
    """OFA/MobileNetV3-style space.

    ``resolutions`` are the input sizes an arch may pick (default 160-224 in
    steps of 16); ``width_mult`` scales every width (rounded to 8);
    ``num_classes`` sizes the classifier. ``MobileNetV3Space(resolutions=(96,
    128), width_mult=0.5, num_classes=10)`` is a cheap variant for tests.

    ``width_choices`` (distinct numbers in [0.05, 4], default ``(1.0,)``)
    are the per-stage width multipliers an arch may pick; with a single
    choice nothing about widths is drawn, mutated, crossed or featured. It
    is a sampling-only option (see ``SearchSpace.network_identity``): the
    ``w`` prefix of a stage names its width, so the option never changes
    what an encoding builds.
    """

    name = "mbv3"
    DEFAULTS: dict[str, Any] = {
        "resolutions": (160, 176, 192, 208, 224),
        "width_mult": 1.0,
        "num_classes": 1000,
        "width_choices": (1.0,),
    }
    sampling_only_options = frozenset({"width_choices"})

    def __init__(
        self,
        *,
        resolutions: Sequence[int] = (160, 176, 192, 208, 224),
        width_mult: float = 1.0,
        num_classes: int = 1000,
        width_choices: Sequence[float] = (1.0,),
    ) -> None:
        res = tuple(resolutions)
        if (
            not res
            or len(set(res)) != len(res)
            or any(not isinstance(r, int) or isinstance(r, bool) or r < 32 for r in res)
        ):
            raise ValueError(f"resolutions must be distinct ints >= 32, got {resolutions!r}")
        if not isinstance(width_mult, (int, float)) or not 0 < width_mult <= 4:
            raise ValueError(f"width_mult must be in (0, 4], got {width_mult!r}")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.resolutions = tuple(sorted(res))
        self.width_mult = float(width_mult)
        self.num_classes = num_classes
        self.width_choices = _width_choices(width_choices)
        self.stem_width = self._w(STEM_WIDTH)
        self.first_width = self._w(FIRST_WIDTH)
        #: the stages' channels at width 1.0
        self.stage_widths = tuple(self._w(s.width) for s in STAGES)
        #: per stage, the output channels of each width choice
        self.stage_channels: tuple[dict[float, int], ...] = tuple(
            {w: make_divisible(s.width * self.width_mult * w) for w in self.width_choices}
            for s in STAGES
        )
        self.final_expand_width = self._w(FINAL_EXPAND_WIDTH)
        self.feature_width = self._w(FEATURE_WIDTH)
        self._elastic = len(self.width_choices) > 1
        self._fixed_widths = (self.width_choices[0],) * len(STAGES)

    def _w(self, width: int) -> int:
        return make_divisible(width * self.width_mult)

    # --- identity -----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.resolutions != self.DEFAULTS["resolutions"]:
            out["resolutions"] = list(self.resolutions)
        if self.width_mult != self.DEFAULTS["width_mult"]:
            out["width_mult"] = self.width_mult
        if self.num_classes != self.DEFAULTS["num_classes"]:
            out["num_classes"] = self.num_classes
        if self.width_choices != self.DEFAULTS["width_choices"]:
            out["width_choices"] = list(self.width_choices)
        return out

    def size(self) -> int:
        """Archs (encodings): two width choices that round to the same channels count twice."""
        per_block = len(KERNELS) * len(EXPANDS)
        per_stage = sum(per_block**d for d in DEPTHS) * len(self.width_choices)
        return len(self.resolutions) * per_stage ** len(STAGES)

    # --- sampling -----------------------------------------------------------
    def sample(self, rng: random.Random) -> MBv3Arch:
        """Resolution, then per stage its depth, its blocks and (width genes only) its width."""
        resolution = rng.choice(self.resolutions)
        stages = []
        widths = []
        for _ in STAGES:
            depth = rng.choice(DEPTHS)
            stages.append(tuple(_random_block(rng) for _ in range(depth)))
            if self._elastic:
                widths.append(rng.choice(self.width_choices))
        return MBv3Arch(resolution, tuple(stages), tuple(widths) or self._fixed_widths)

    def mutate(self, arch: Any, rng: random.Random) -> MBv3Arch:
        """Change one choice: the resolution, a stage's depth or width, or a block's kernel or
        expand."""
        arch = self._check(arch)
        choices: list[tuple[str, int, int]] = []
        if len(self.resolutions) > 1:
            choices.append(("resolution", 0, 0))
        for s, blocks in enumerate(arch.stages):
            choices.append(("depth", s, 0))
            for i in range(len(blocks)):
                choices.extend([("kernel", s, i), ("expand", s, i)])
        if self._elastic:
            choices.extend(("width", s, 0) for s in range(len(STAGES)))
        what, s, i = rng.choice(choices)
        if what == "resolution":
            resolution = rng.choice([r for r in self.resolutions if r != arch.resolution])
            return MBv3Arch(resolution, arch.stages, arch.widths)
        if what == "width":
            widths = list(arch.widths)
            widths[s] = rng.choice([w for w in self.width_choices if w != widths[s]])
            return MBv3Arch(arch.resolution, arch.stages, tuple(widths))
        stages = list(arch.stages)
        blocks = list(stages[s])
        if what == "depth":
            depth = rng.choice([d for d in DEPTHS if d != len(blocks)])
            blocks = blocks[:depth] + [_random_block(rng) for _ in range(depth - len(blocks))]
        elif what == "kernel":
            blocks[i] = (rng.choice([k for k in KERNELS if k != blocks[i][0]]), blocks[i][1])
        else:
            blocks[i] = (blocks[i][0], rng.choice([e for e in EXPANDS if e != blocks[i][1]]))
        stages[s] = tuple(blocks)
        return MBv3Arch(arch.resolution, tuple(stages), arch.widths)

    def crossover(self, a: Any, b: Any, rng: random.Random) -> MBv3Arch:
        """Each choice (resolution, depth, each slot's kernel and expand, each stage's width)
        from a parent.

        A slot present in only one parent (the other is shallower) comes from that parent.
        """
        a, b = self._check(a), self._check(b)
        resolution = a.resolution if rng.random() < 0.5 else b.resolution
        stages = []
        widths = []
        for s, (sa, sb) in enumerate(zip(a.stages, b.stages, strict=True)):
            depth = len(sa) if rng.random() < 0.5 else len(sb)
            blocks = []
            for i in range(depth):
                donors = [stage[i] for stage in (sa, sb) if i < len(stage)]
                kernel = rng.choice(donors)[0]
                expand = rng.choice(donors)[1]
                blocks.append((kernel, expand))
            stages.append(tuple(blocks))
            if self._elastic:
                widths.append(a.widths[s] if rng.random() < 0.5 else b.widths[s])
        return MBv3Arch(resolution, tuple(stages), tuple(widths) or self._fixed_widths)

    # --- encoding -----------------------------------------------------------
    def encode(self, arch: Any) -> str:
        arch = self._check(arch)
        groups = [
            ("" if w == 1.0 else f"w{w!r}:") + ",".join(f"k{k}e{e}" for k, e in blocks)
            for blocks, w in zip(arch.stages, arch.widths, strict=True)
        ]
        return "|".join([f"r{arch.resolution}", *groups])

    def decode(self, text: str) -> MBv3Arch:
        if not isinstance(text, str):
            raise UnknownArch(f"not an arch string: {text!r}")
        arch = _parse(text)
        if arch is None:
            raise UnknownArch(f"not an {self.name} arch string: {text!r}")
        self._check(arch)
        if self.encode(arch) != text:  # e.g. leading zeros in the resolution
            raise UnknownArch(f"not a canonical {self.name} arch string: {text!r}")
        return arch

    def features(self, arch: Any) -> list[float]:
        """``[resolution]`` + per slot (5 stages x 4) ``[active, kernel, expand]``: 61 floats,
        then with width genes the 5 stage widths (66).

        Inactive slots are ``[0, 0, 0]``.
        """
        arch = self._check(arch)
        out = [float(arch.resolution)]
        for blocks in arch.stages:
            for i in range(MAX_DEPTH):
                if i < len(blocks):
                    out.extend([1.0, float(blocks[i][0]), float(blocks[i][1])])
                else:
                    out.extend([0.0, 0.0, 0.0])
        if self._elastic:
            out.extend(arch.widths)
        return out

    # --- the network ----------------------------------------------------------
    def input_shape(self, arch: Any) -> tuple[int, ...]:
        r = self._check(arch).resolution
        return (1, 3, r, r)

    def blocks(self, arch: Any) -> list[Block]:
        """Stem, the fixed first block, each active MBConv block in order, head (sequential)."""
        arch = self._check(arch)
        hw = conv_out(arch.resolution, 2)
        out = [
            Block.of(STEM, c_out=self.stem_width, hw=arch.resolution),
            self._mbconv(3, 1, self.stem_width, self.first_width, 1, hw, False, "relu"),
        ]
        c_in = self.first_width
        for spec, channels, blocks, w in zip(
            STAGES, self.stage_channels, arch.stages, arch.widths, strict=True
        ):
            width = channels[w]
            for i, (kernel, expand) in enumerate(blocks):
                stride = spec.stride if i == 0 else 1
                out.append(self._mbconv(kernel, expand, c_in, width, stride, hw, spec.se, spec.act))
                hw = conv_out(hw, stride)
                c_in = width
        out.append(self._head(c_in, hw))
        return out

    def _mbconv(
        self,
        kernel: int,
        expand: int,
        c_in: int,
        c_out: int,
        stride: int,
        hw: int,
        se: bool,
        act: str,
    ) -> Block:
        return Block.of(
            MBCONV, kernel=kernel, expand=expand, c_in=c_in, c_out=c_out,
            stride=stride, hw=hw, se=se, act=act,
        )  # fmt: skip

    def _head(self, c_in: int, hw: int) -> Block:
        return Block.of(
            HEAD, c_in=c_in, c_mid=self.final_expand_width, c_out=self.feature_width,
            classes=self.num_classes, hw=hw,
        )  # fmt: skip

    def blocks_at_resolution(self, resolution: int) -> list[Block]:
        """Every distinct block an arch at ``resolution`` can contain, sorted.

        With ``C_s`` the distinct channel counts of stage ``s`` (one per width
        choice, fewer where two round alike; ``C_0`` is the first block's
        width): stem and first block, per stage ``9 * |C_{s-1}| * |C_s|``
        first blocks (every pair of widths meets there) and ``9 * |C_s|``
        stride-1 blocks, and ``|C_5|`` heads; less ``9 * |C_3 & C_4|``, the
        first blocks of stage 4 (stride 1) that map c channels to c and so
        are its stride-1 blocks. One width: 93 blocks; (0.5, 0.75, 1.0) at
        ``width_mult`` 1: 446 (0.75 and 1.0 both give stage 1 24 channels);
        three widths that round apart everywhere, e.g. (0.5, 1.0, 1.5): 491.
        """
        if resolution not in self.resolutions:
            raise UnknownArch(f"resolution {resolution} is not one of {self.resolutions}")
        hw = conv_out(resolution, 2)
        found = {
            Block.of(STEM, c_out=self.stem_width, hw=resolution),
            self._mbconv(3, 1, self.stem_width, self.first_width, 1, hw, False, "relu"),
        }
        c_ins = [self.first_width]
        for spec, channels in zip(STAGES, self.stage_channels, strict=True):
            c_outs = sorted(set(channels.values()))
            hw_out = conv_out(hw, spec.stride)
            for kernel, expand, c_out in itertools.product(KERNELS, EXPANDS, c_outs):
                found.update(
                    self._mbconv(kernel, expand, c_in, c_out, spec.stride, hw, spec.se, spec.act)
                    for c_in in c_ins
                )
                found.add(self._mbconv(kernel, expand, c_out, c_out, 1, hw_out, spec.se, spec.act))
            hw, c_ins = hw_out, c_outs
        found.update(self._head(c_in, hw) for c_in in c_ins)
        return sorted(found)

    def all_blocks(self) -> list[Block]:
        """Every distinct block over all resolutions (blocks shared between resolutions once)."""
        found: set[Block] = set()
        for resolution in self.resolutions:
            found.update(self.blocks_at_resolution(resolution))
        return sorted(found)

    def count_params(self, arch: Any) -> int:
        return sum(block_params(b) for b in self.blocks(arch))

    def count_flops(self, arch: Any) -> int:
        """MACs of the convolutions and the classifier (see :func:`block_flops`)."""
        return sum(block_flops(b) for b in self.blocks(arch))

    def build(self, arch: Any) -> Any:
        """The network; ``net.block_modules()`` lists its modules in :meth:`blocks` order."""
        from fleetnas.controller.spaces._mbv3_torch import MBv3Net, build_block

        return MBv3Net([build_block(b.kind, _block_params(b)) for b in self.blocks(arch)]).eval()

    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        from fleetnas.controller.spaces._mbv3_torch import build_block

        p = _block_params(block)
        c_in = 3 if block.kind == STEM else p["c_in"]
        return build_block(block.kind, p).eval(), (1, c_in, p["hw"], p["hw"])

    def _check(self, arch: Any) -> MBv3Arch:
        """``arch`` if it belongs to this space, else UnknownArch."""
        if not isinstance(arch, MBv3Arch):
            raise UnknownArch(f"not an arch of {self.identity()}: {arch!r}")
        if type(arch.resolution) is not int or arch.resolution not in self.resolutions:
            raise UnknownArch(
                f"resolution {arch.resolution!r} is not one of {self.identity()}'s "
                f"{list(self.resolutions)}"
            )
        if (
            not isinstance(arch.stages, tuple)
            or len(arch.stages) != len(STAGES)
            or any(
                not isinstance(blocks, tuple)
                or len(blocks) not in DEPTHS
                or not all(_is_block_choice(blk) for blk in blocks)
                for blocks in arch.stages
            )
        ):
            raise UnknownArch(f"not an arch of {self.identity()}: {arch!r}")
        if (
            not isinstance(arch.widths, tuple)
            or len(arch.widths) != len(STAGES)
            or any(type(w) is not float or w not in self.width_choices for w in arch.widths)
        ):
            raise UnknownArch(
                f"stage widths {arch.widths!r} are not among {self.identity()}'s width choices "
                f"{list(self.width_choices)}"
            )
        return arch


def _width_choices(choices: Sequence[float]) -> tuple[float, ...]:
    """``choices`` as a sorted tuple of floats, or ValueError naming the bad value."""
    values = tuple(choices) if isinstance(choices, (list, tuple)) else ()
    if (
        not values
        or any(
            isinstance(w, bool)
            or not isinstance(w, (int, float))
            or not MIN_WIDTH <= w <= MAX_WIDTH
            for w in values
        )
        or len(set(values)) != len(values)
    ):
        raise ValueError(
            f"width_choices must be distinct numbers in [{MIN_WIDTH}, {MAX_WIDTH}], got {choices!r}"
        )
    return tuple(sorted(float(w) for w in values))


def _parse(text: str) -> MBv3Arch | None:
    """The arch ``text`` spells, unchecked against any space; None when it is no arch string.

    Not necessarily canonical (``decode`` re-encodes to check).
    """
    parts = text.split("|")
    head = parts[0]
    groups = [_STAGE_RE.fullmatch(p) for p in parts[1:]]
    matches = [g for g in groups if g is not None]
    if (
        len(parts) != len(STAGES) + 1
        or not head.startswith("r")
        or not head[1:].isdigit()
        or not head[1:].isascii()
        or len(matches) != len(groups)
    ):
        return None
    stages = tuple(
        tuple((int(k), int(e)) for k, e in _BLOCK_RE.findall(g.group(2))) for g in matches
    )
    widths = tuple(1.0 if g.group(1) is None else float(g.group(1)) for g in matches)
    return MBv3Arch(int(head[1:]), stages, widths)


_BLOCK_CHOICES = frozenset((k, e) for k in KERNELS for e in EXPANDS)


def _is_block_choice(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(type(v) is int for v in value)
        and value in _BLOCK_CHOICES
    )


def _random_block(rng: random.Random) -> tuple[int, int]:
    return (rng.choice(KERNELS), rng.choice(EXPANDS))


_SHAPES: dict[str, frozenset[str]] = {
    STEM: frozenset({"c_out", "hw"}),
    MBCONV: frozenset({"kernel", "expand", "c_in", "c_out", "stride", "hw", "se", "act"}),
    HEAD: frozenset({"c_in", "c_mid", "c_out", "classes", "hw"}),
}


def _block_params(block: Block) -> dict[str, Any]:
    """The block's params as a dict, or UnknownBlock when it is not an mbv3 block."""
    names = _SHAPES.get(block.kind)
    params = dict(block.params)
    bad = UnknownBlock(f"not an mbv3 block: {block.key}")
    if names is None or set(params) != names or len(params) != len(block.params):
        raise bad
    for name, value in params.items():
        if name == "se":
            ok = isinstance(value, bool)
        elif name == "act":
            ok = value in ACTS
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not ok:
            raise bad
    if block.kind == MBCONV and (params["kernel"] % 2 == 0 or params["stride"] not in (1, 2)):
        raise bad
    return params


def mid_width(c_in: int, expand: int) -> int:
    """The expanded width of an MBConv block."""
    return make_divisible(round(c_in * expand))


def se_width(mid: int) -> int:
    """The squeeze width of a squeeze-excite on ``mid`` channels."""
    return make_divisible(mid // 4)


def block_params(block: Block) -> int:
    """Trainable parameters of one mbv3 block (BN weight and bias count)."""
    p = _block_params(block)
    if block.kind == STEM:
        return 27 * p["c_out"] + 2 * p["c_out"]
    if block.kind == HEAD:
        ci, cm, co, n = p["c_in"], p["c_mid"], p["c_out"], p["classes"]
        return (ci * cm + 2 * cm) + cm * co + (co * n + n)
    ci, co, k = p["c_in"], p["c_out"], p["kernel"]
    mid = mid_width(ci, p["expand"]) if p["expand"] != 1 else ci
    total = 0 if p["expand"] == 1 else ci * mid + 2 * mid
    total += mid * k * k + 2 * mid
    if p["se"]:
        sq = se_width(mid)
        total += (mid * sq + sq) + (sq * mid + mid)
    return total + mid * co + 2 * co


def block_flops(block: Block) -> int:
    """MACs of one block: convolutions (depthwise included) and the linear layer.

    BN, activations, pooling, the squeeze-excite's scaling and residual adds
    are not counted; BN folds into the conv on export.
    """
    p = _block_params(block)
    if block.kind == STEM:
        return 27 * p["c_out"] * conv_out(p["hw"], 2) ** 2
    if block.kind == HEAD:
        ci, cm, co, n = p["c_in"], p["c_mid"], p["c_out"], p["classes"]
        return ci * cm * p["hw"] ** 2 + cm * co + co * n
    ci, co, k, hw = p["c_in"], p["c_out"], p["kernel"], p["hw"]
    hw_out = conv_out(hw, p["stride"])
    mid = mid_width(ci, p["expand"]) if p["expand"] != 1 else ci
    total = 0 if p["expand"] == 1 else ci * mid * hw**2
    total += mid * k * k * hw_out**2
    if p["se"]:
        total += 2 * mid * se_width(mid)
    return total + mid * co * hw_out**2
