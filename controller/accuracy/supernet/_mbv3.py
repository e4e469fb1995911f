"""The MobileNetV3/OFA supernet: elastic kernel, expand ratio, depth, width and resolution.

Same skeleton as :class:`~fleetnas.controller.spaces.MobileNetV3Space`
builds (its stem, fixed first block and head modules, a ``num_classes``-way
classifier), with each stage's four block slots as
:class:`~._elastic.ElasticMBConv` (elastic kernel and expand ratio, see
``_elastic.py``). Elastic depth: a subnet of depth ``d`` in a stage runs the
stage's first ``d`` slots. Elastic resolution: the network is convolutional
and pools globally, so the subnet's resolution is only the size its input is
resized to. Elastic width (the space's per-stage ``width_choices``, OFA's
channel pruning): every layer of stage ``s`` is held at the stage's largest
channel count, and a subnet whose stage width is ``w`` uses the first
``space.stage_channels[s][w]`` channels of it (the count ``space.build``
gives that arch: the same table), and its consumers (the stage's later
blocks, the next stage's first block or the head) the same first input
channels. :meth:`MBv3Supernet.sort_channels` re-orders each stage's channels
by importance (OFA's step before shrinking width) without changing what the
largest subnet computes.

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
import torch.nn.functional as F
from torch import nn

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._elastic import ElasticMBConv
from fleetnas.controller.spaces import MBv3Arch, MobileNetV3Space, UnknownArch
from fleetnas.controller.spaces._mbv3 import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, STAGES
from fleetnas.controller.spaces._mbv3_torch import ConvBNAct, Head, MBConv


@dataclass(frozen=True)
class Choices:
    """The per-slot choices a sampler may draw from (a subset of the space's).

    ``elastic_width`` False holds every stage at the space's largest width
    choice; True draws from all of them.
    """

    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS
    depths: tuple[int, ...] = DEPTHS
    elastic_width: bool = True


FULL = Choices()


class MBv3Supernet(Supernet):
    """Weight-sharing mbv3 network (see module doc).

    ``largest()`` is depth 4, kernel 7, expand 6 and the largest width choice
    everywhere at the largest resolution; ``smallest()`` depth 2, kernel 3,
    expand 3 and the smallest width choice at the smallest resolution.
    ``kernel_transform`` turns on OFA's kernel transform matrices.
    """

    kind: ClassVar[str] = "mbv3"
    default_sampling: ClassVar[str] = "sandwich"
    #: version 2: stage widths are elastic (version 1 ran every arch at width 1.0)
    version: ClassVar[int] = 2

    @classmethod
    def key_version(cls, space: Any) -> int:
        """1 for a space whose only width choice is 1.0 (the supernet is the same as
        version 1's, so supernets stored before elastic width are still found); 2 else."""
        if isinstance(space, MobileNetV3Space) and space.width_choices == (1.0,):
            return 1
        return cls.version

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
        #: per stage, the channels the supernet holds: its largest width choice's
        self.stage_capacity = tuple(max(c.values()) for c in space.stage_channels)
        stages = []
        c_in = space.first_width
        for spec, width in zip(STAGES, self.stage_capacity, strict=True):
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

    def channels(self, arch: Any) -> tuple[int, ...]:
        """Each stage's output channels in ``arch`` (the space's own table)."""
        arch = self._arch(arch)
        return tuple(c[w] for c, w in zip(self.mbv3.stage_channels, arch.widths, strict=True))

    def forward(self, x: torch.Tensor, arch: Any) -> torch.Tensor:  # type: ignore[override]
        arch = self._arch(arch)
        h = self.first(self.stem(x))
        for s, (blocks, c_out) in enumerate(zip(arch.stages, self.channels(arch), strict=True)):
            for slot, (kernel, expand) in zip(self.slots(s), blocks, strict=False):
                h = slot(h, kernel, expand, c_out)
        conv, bn, act = self.head.final_expand
        h = act(bn(F.conv2d(h, conv.weight[:, : h.shape[1]])))
        h = self.head.feature_mix(self.head.pool(h))
        return self.head.classifier(torch.flatten(h, 1))  # type: ignore[no-any-return]

    def slots(self, stage: int) -> list[ElasticMBConv]:
        """The four block slots of ``stage``."""
        return cast(list[ElasticMBConv], list(cast(nn.ModuleList, self.stages[stage])))

    def largest(self) -> MBv3Arch:
        return self.restricted_largest(FULL)

    def smallest(self) -> MBv3Arch:
        return self.restricted_smallest(FULL)

    def _widths(self, choices: Choices, pick: Any) -> tuple[float, ...]:
        options = self.mbv3.width_choices
        if not choices.elastic_width:
            options = (max(options),)
        return (pick(options),) * len(STAGES)

    def restricted_largest(self, choices: Choices) -> MBv3Arch:
        """Every choice at the maximum of ``choices``, at the largest resolution."""
        block = (max(choices.kernels), max(choices.expands))
        stages = tuple((block,) * max(choices.depths) for _ in STAGES)
        return MBv3Arch(max(self.mbv3.resolutions), stages, self._widths(choices, max))

    def restricted_smallest(self, choices: Choices) -> MBv3Arch:
        """Every choice at the minimum of ``choices``, at the smallest resolution."""
        block = (min(choices.kernels), min(choices.expands))
        stages = tuple((block,) * min(choices.depths) for _ in STAGES)
        return MBv3Arch(min(self.mbv3.resolutions), stages, self._widths(choices, min))

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
        widths = self._widths(choices, max)
        if choices.elastic_width and len(self.mbv3.width_choices) > 1:
            widths = tuple(rng.choice(self.mbv3.width_choices) for _ in STAGES)
        return MBv3Arch(resolution, tuple(stages), widths)

    # --- channel importance (OFA's re-organisation before elastic width) -------
    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-order every stage's output channels by importance, most important first.

        A channel's importance is the L1 norm of the weights that write it: the
        rows of every slot's projection of the stage (they all add into the
        same channels through the residuals). The stage's projections and
        their BN (parameters and running statistics), the expansions of its
        later slots and the next stage's first slot (or the head's first
        conv) are permuted alike, so a subnet whose stages are all at the
        largest width computes exactly what it did; a narrower stage then
        keeps its most important channels. ``optimizer`` state tensors shaped like a permuted
        parameter (SGD momentum) are permuted with it. Deterministic (a stable sort).
        """
        for s in range(len(STAGES)):
            slots = self.slots(s)
            importance = sum(slot.project_conv.weight.abs().sum(dim=(1, 2, 3)) for slot in slots)
            order = torch.sort(cast(torch.Tensor, importance), descending=True, stable=True)[1]
            for i, slot in enumerate(slots):
                _permute(slot.project_conv.weight, order, 0, optimizer)
                bn = slot.project_bn
                for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                    _permute(cast(torch.Tensor, tensor), order, 0, optimizer)
                if i > 0:
                    _permute(slot.expand_conv.weight, order, 1, optimizer)
            if s + 1 < len(STAGES):
                consumer = self.slots(s + 1)[0].expand_conv.weight
            else:
                consumer = self.head.final_expand[0].weight
            _permute(consumer, order, 1, optimizer)

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
        head = cast(Head, blocks[position])
        c_in = head.final_expand[0].weight.shape[1]
        state = self.head.state_dict()
        state["final_expand.0.weight"] = state["final_expand.0.weight"][:, :c_in]
        head.load_state_dict(state)


def _permute(
    tensor: torch.Tensor, order: torch.Tensor, dim: int, optimizer: torch.optim.Optimizer | None
) -> None:
    """``tensor`` re-indexed by ``order`` along ``dim`` in place, its optimizer state alike."""
    tensor.copy_(tensor.index_select(dim, order))
    if optimizer is None or not isinstance(tensor, nn.Parameter):
        return
    for value in optimizer.state.get(tensor, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == tensor.shape:
            value.copy_(value.index_select(dim, order))
