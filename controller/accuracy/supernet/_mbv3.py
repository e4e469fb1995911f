"""The MobileNetV3/OFA supernet: elastic kernel, expand ratio, depth and resolution.

Same skeleton as :class:`~fleetnas.controller.spaces.MobileNetV3Space`
builds (its stem, fixed first block and head modules, a ``num_classes``-way
classifier), with each stage's four block slots as
:class:`~._elastic.ElasticMBConv` (elastic kernel and expand ratio, see
``_elastic.py``). Elastic depth: a subnet of depth ``d`` in a stage runs the
stage's first ``d`` slots. Elastic resolution: the network is convolutional
and pools globally, so the subnet's resolution is only the size its input is
resized to. The space has no per-arch width (``width_mult`` is a space
option), so there is no elastic width.

Trained by default with the sandwich rule (Yu et al. 2019/2020, "Universally
Slimmable Networks", BigNAS): per step the largest subnet, the smallest and
``sandwich_random`` random ones; in-place distillation and progressive
shrinking are options of :class:`~fleetnas.controller.accuracy.supernet.TrainConfig`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import nn

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._elastic import ElasticMBConv
from fleetnas.controller.spaces import MBv3Arch, MobileNetV3Space, UnknownArch
from fleetnas.controller.spaces._mbv3 import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, STAGES
from fleetnas.controller.spaces._mbv3_torch import ConvBNAct, Head, MBConv


@dataclass(frozen=True)
class Choices:
    """The per-slot choices a sampler may draw from (a subset of the space's)."""

    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS
    depths: tuple[int, ...] = DEPTHS


FULL = Choices()


class MBv3Supernet(Supernet):
    """Weight-sharing mbv3 network (see module doc).

    ``largest()`` is depth 4, kernel 7, expand 6 everywhere at the largest
    resolution; ``smallest()`` depth 2, kernel 3, expand 3 at the smallest.
    ``kernel_transform`` turns on OFA's kernel transform matrices.
    """

    kind: ClassVar[str] = "mbv3"
    default_sampling: ClassVar[str] = "sandwich"

    def __init__(
        self, space: MobileNetV3Space, num_classes: int, *, kernel_transform: bool = False
    ) -> None:
        if not isinstance(space, MobileNetV3Space):
            raise TypeError(f"MBv3Supernet needs a MobileNetV3Space, got {type(space).__name__}")
        super().__init__(space, num_classes)
        self.mbv3 = space
        self.stem = ConvBNAct(3, space.stem_width, 3, 2, "hswish")
        self.first = MBConv(
            c_in=space.stem_width, c_out=space.first_width, kernel=3, expand=1,
            stride=1, se=False, act="relu",
        )  # fmt: skip
        stages = []
        c_in = space.first_width
        for spec, width in zip(STAGES, space.stage_widths, strict=True):
            slots = []
            for i in range(MAX_DEPTH):
                slots.append(
                    ElasticMBConv(
                        c_in=c_in if i == 0 else width, c_out=width,
                        stride=spec.stride if i == 0 else 1, se=spec.se, act=spec.act,
                        kernel_transform=kernel_transform,
                    )  # fmt: skip
                )
            stages.append(nn.ModuleList(slots))
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.head = Head(c_in, space.final_expand_width, space.feature_width, num_classes)

    def _arch(self, arch: Any) -> MBv3Arch:
        self.mbv3.encode(arch)  # UnknownArch for an arch of another space
        if not isinstance(arch, MBv3Arch):  # pragma: no cover - encode checked it
            raise UnknownArch(f"not an mbv3 arch: {arch!r}")
        return arch

    def forward(self, x: torch.Tensor, arch: Any) -> torch.Tensor:  # type: ignore[override]
        h = self.first(self.stem(x))
        for s, blocks in enumerate(self._arch(arch).stages):
            for slot, (kernel, expand) in zip(self.slots(s), blocks, strict=False):
                h = slot(h, kernel, expand)
        return self.head(h)  # type: ignore[no-any-return]

    def slots(self, stage: int) -> list[ElasticMBConv]:
        """The four block slots of ``stage``."""
        return cast(list[ElasticMBConv], list(cast(nn.ModuleList, self.stages[stage])))

    def largest(self) -> MBv3Arch:
        return self.restricted_largest(FULL)

    def smallest(self) -> MBv3Arch:
        return self.restricted_smallest(FULL)

    def restricted_largest(self, choices: Choices) -> MBv3Arch:
        """Every choice at the maximum of ``choices``, at the largest resolution."""
        block = (max(choices.kernels), max(choices.expands))
        stages = tuple((block,) * max(choices.depths) for _ in STAGES)
        return MBv3Arch(max(self.mbv3.resolutions), stages)

    def restricted_smallest(self, choices: Choices) -> MBv3Arch:
        """Every choice at the minimum of ``choices``, at the smallest resolution."""
        block = (min(choices.kernels), min(choices.expands))
        stages = tuple((block,) * min(choices.depths) for _ in STAGES)
        return MBv3Arch(min(self.mbv3.resolutions), stages)

    def restricted_sample(self, rng: random.Random, choices: Choices) -> MBv3Arch:
        """A uniformly random arch whose every choice lies in ``choices`` (any resolution)."""
        if choices == FULL:
            return self.mbv3.sample(rng)
        resolution = rng.choice(self.mbv3.resolutions)
        stages = []
        for _ in STAGES:
            depth = rng.choice(choices.depths)
            stages.append(
                tuple((rng.choice(choices.kernels), rng.choice(choices.expands)) for _ in range(depth))
            )
        return MBv3Arch(resolution, tuple(stages))

    def _copy_into(self, module: nn.Module, arch: Any) -> None:
        arch = self._arch(arch)
        blocks: Sequence[nn.Module] = module.block_modules()  # type: ignore[operator]
        blocks[0].load_state_dict(self.stem.state_dict())
        blocks[1].load_state_dict(self.first.state_dict())
        position = 2
        for s, choices in enumerate(arch.stages):
            for slot, (kernel, expand) in zip(self.slots(s), choices, strict=False):
                slot.copy_into(cast(MBConv, blocks[position]), kernel, expand)
                position += 1
        blocks[position].load_state_dict(self.head.state_dict())
