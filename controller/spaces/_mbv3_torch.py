"""Torch modules of the mbv3 space (imported only when a network is built).

One module per block of :meth:`MobileNetV3Space.blocks`; the network is those
modules in sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fleetnas.controller.spaces._mbv3 import HEAD, MBCONV, STEM, mid_width, se_width


def make_act(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "hswish":
        return nn.Hardswish()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, act: str | None, groups: int = 1
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """``x * hsigmoid(expand(relu(reduce(avgpool(x)))))``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        squeeze = se_width(c)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, squeeze, 1),
            nn.ReLU(),
            nn.Conv2d(squeeze, c, 1),
            nn.Hardsigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class MBConv(nn.Module):
    """Inverted residual: expand, depthwise, optional SE, project, residual when shapes match."""

    def __init__(
        self,
        *,
        c_in: int,
        c_out: int,
        kernel: int,
        expand: int,
        stride: int,
        se: bool,
        act: str,
    ) -> None:
        super().__init__()
        mid = mid_width(c_in, expand) if expand != 1 else c_in
        self.expand = ConvBNAct(c_in, mid, 1, 1, act) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, act, groups=mid)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = ConvBNAct(mid, c_out, 1, 1, None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.residual else out


class Head(nn.Module):
    """Final 1x1 expand (BN, hswish), global pool, 1x1 feature mix (hswish), linear."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, classes: int) -> None:
        super().__init__()
        self.final_expand = ConvBNAct(c_in, c_mid, 1, 1, "hswish")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix = nn.Sequential(nn.Conv2d(c_mid, c_out, 1, bias=False), nn.Hardswish())
        self.classifier = nn.Linear(c_out, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_mix(self.pool(self.final_expand(x)))
        return self.classifier(torch.flatten(x, 1))


class MBv3Net(nn.Sequential):
    """The block modules in sequence."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__(*modules)

    def block_modules(self) -> list[nn.Module]:
        """The modules of the net, one per block, in ``MobileNetV3Space.blocks`` order."""
        return list(self)


def build_block(kind: str, p: dict[str, Any]) -> nn.Module:
    """The module of one (validated) block."""
    if kind == STEM:
        return ConvBNAct(3, p["c_out"], 3, 2, "hswish")
    if kind == MBCONV:
        return MBConv(
            c_in=p["c_in"], c_out=p["c_out"], kernel=p["kernel"], expand=p["expand"],
            stride=p["stride"], se=p["se"], act=p["act"],
        )  # fmt: skip
    if kind == HEAD:
        return Head(p["c_in"], p["c_mid"], p["c_out"], p["classes"])
    raise ValueError(f"no module for block kind {kind!r}")
