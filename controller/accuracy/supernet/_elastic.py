"""Elastic MBConv layers for the mbv3 supernet (Cai et al. 2020, "Once-for-All").

One :class:`ElasticMBConv` holds the largest block of its slot (kernel 7,
the largest expand ratio, the largest input and output widths) and runs any
smaller one on a part of its weights:

* **Elastic width**: a ``c_in``-channel input uses the first ``c_in`` input
  channels of the expansion, and a ``c_out``-channel subnet the first
  ``c_out`` output channels of the projection and its BN (the channel counts
  are the space's, ``MobileNetV3Space.stage_channels``). The residual is
  added when the stride is 1 and the subnet's ``c_in == c_out``, as
  ``MBConv`` decides for the stand-alone block. Which channels come first is
  set by :meth:`~fleetnas.controller.accuracy.supernet.MBv3Supernet.sort_channels`.

* **Elastic expand ratio**: the first ``mid`` channels of the shared
  expansion (``mid = mid_width(c_in, expand)``, as the space builds it); the
  depthwise conv, its BN, the squeeze-excite (its first
  ``se_width(mid)`` squeeze channels) and the projection's inputs follow.
  OFA sorts channels by importance before shrinking; we do not.
* **Elastic kernel size**: the centre ``k x k`` of the shared 7x7 depthwise
  kernel; with ``kernel_transform``, OFA's learned per-layer transform
  matrices map the centre 5x5 of the 7x7 (25x25 matrix) and the centre 3x3
  of that 5x5 (9x9 matrix), initialised to the identity.

Batch norm over a variable width is :class:`ElasticBatchNorm2d`: a
``BatchNorm2d`` that uses, and in train mode updates, the first ``C``
entries of its affine parameters and running statistics for a ``C``-channel
input, with ``nn.BatchNorm2d``'s own momentum rule (``momentum=None`` is the
cumulative average used to recalibrate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fleetnas.controller.spaces._mbv3 import EXPANDS, KERNELS, mid_width, se_width
from fleetnas.controller.spaces._mbv3_torch import MBConv, make_act

MAX_KERNEL = max(KERNELS)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the first ``x.shape[1]`` of its ``num_features`` channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x,
            self.running_mean[:c],
            self.running_var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            factor,
            self.eps,
        )

    def copy_into(self, bn: nn.BatchNorm2d) -> None:
        """Copy the first ``bn.num_features`` channels' parameters and statistics into ``bn``."""
        c = bn.num_features
        assert self.running_mean is not None and self.running_var is not None
        assert bn.running_mean is not None and bn.running_var is not None
        assert bn.num_batches_tracked is not None and self.num_batches_tracked is not None
        bn.weight.copy_(self.weight[:c])
        bn.bias.copy_(self.bias[:c])
        bn.running_mean.copy_(self.running_mean[:c])
        bn.running_var.copy_(self.running_var[:c])
        bn.num_batches_tracked.copy_(self.num_batches_tracked)


class ElasticMBConv(nn.Module):
    """An MBConv slot running any ``(kernel, expand)`` of the space on shared weights."""

    def __init__(
        self,
        *,
        c_in: int,
        c_out: int,
        stride: int,
        se: bool,
        act: str,
        kernel_transform: bool = False,
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride, self.has_se = c_in, c_out, stride, se
        # mid_width grows with c_in and expand: the largest input gives the largest expansion
        mid = mid_width(c_in, max(EXPANDS))
        self.expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
        self.expand_bn = ElasticBatchNorm2d(mid)
        self.depthwise_conv = nn.Conv2d(mid, mid, MAX_KERNEL, groups=mid, bias=False)
        self.depthwise_bn = ElasticBatchNorm2d(mid)
        self.act = make_act(act)
        if se:
            squeeze = se_width(mid)
            self.se_reduce = nn.Conv2d(mid, squeeze, 1)
            self.se_expand = nn.Conv2d(squeeze, mid, 1)
        self.project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self.project_bn = ElasticBatchNorm2d(c_out)
        self.transforms = nn.ParameterDict()
        if kernel_transform:
            for big, small in zip(KERNELS[::-1], KERNELS[::-1][1:], strict=False):
                self.transforms[f"{big}to{small}"] = nn.Parameter(torch.eye(small * small))

    def kernel(self, k: int, mid: int) -> torch.Tensor:
        """The ``(mid, 1, k, k)`` depthwise kernel of kernel size ``k`` (see module doc)."""
        weight = self.depthwise_conv.weight[:mid]
        size = MAX_KERNEL
        while size > k:
            small = KERNELS[KERNELS.index(size) - 1]
            start = (size - small) // 2
            weight = weight[:, :, start : start + small, start : start + small]
            matrix = self.transforms[f"{size}to{small}"] if self.transforms else None
            if matrix is not None:
                flat = weight.reshape(mid, small * small) @ matrix
                weight = flat.reshape(mid, 1, small, small)
            size = small
        return weight

    def forward(
        self, x: torch.Tensor, kernel: int, expand: int, c_out: int | None = None
    ) -> torch.Tensor:
        """Run block ``(kernel, expand)`` on ``x`` (its channels: the input width) with
        ``c_out`` output channels (None: all of the slot's)."""
        c_in = x.shape[1]
        c_out = self.c_out if c_out is None else c_out
        mid = mid_width(c_in, expand)
        if c_in > self.c_in or c_out > self.c_out or mid > self.expand_conv.weight.shape[0]:
            raise ValueError(
                f"block {c_in}->{c_out} channels (mid {mid}) exceeds the slot's "
                f"{self.c_in}->{self.c_out}"
            )
        h = self.act(self.expand_bn(F.conv2d(x, self.expand_conv.weight[:mid, :c_in])))
        h = F.conv2d(h, self.kernel(kernel, mid), None, self.stride, kernel // 2, 1, mid)
        h = self.act(self.depthwise_bn(h))
        if self.has_se:
            squeeze = se_width(mid)
            assert self.se_reduce.bias is not None and self.se_expand.bias is not None
            gate = h.mean(dim=(2, 3), keepdim=True)
            gate = F.relu(
                F.conv2d(gate, self.se_reduce.weight[:squeeze, :mid], self.se_reduce.bias[:squeeze])
            )
            gate = F.hardsigmoid(
                F.conv2d(gate, self.se_expand.weight[:mid, :squeeze], self.se_expand.bias[:mid])
            )
            h = h * gate
        out = self.project_bn(F.conv2d(h, self.project_conv.weight[:c_out, :mid]))
        return x + out if self.stride == 1 and c_in == c_out else out

    def copy_into(self, block: MBConv, kernel: int, expand: int) -> None:
        """Copy the ``(kernel, expand)`` weights into a stand-alone ``MBConv`` of that shape
        (its input and output widths are read from ``block``)."""
        expand_conv, expand_bn = block.expand[0], block.expand[1]  # type: ignore[index]
        mid, c_in = expand_conv.weight.shape[:2]
        c_out = block.project[0].weight.shape[0]  # type: ignore[index]
        if mid != mid_width(c_in, expand):
            raise ValueError(f"block of expand {mid / c_in:g}, not {expand}")
        expand_conv.weight.copy_(self.expand_conv.weight[:mid, :c_in])
        self.expand_bn.copy_into(expand_bn)
        block.depthwise[0].weight.copy_(self.kernel(kernel, mid))
        self.depthwise_bn.copy_into(block.depthwise[1])  # type: ignore[arg-type]
        if self.has_se:
            squeeze = se_width(mid)
            reduce, grow = block.se.gate[1], block.se.gate[3]  # type: ignore[index]
            assert self.se_reduce.bias is not None and self.se_expand.bias is not None
            reduce.weight.copy_(self.se_reduce.weight[:squeeze, :mid])
            reduce.bias.copy_(self.se_reduce.bias[:squeeze])
            grow.weight.copy_(self.se_expand.weight[:mid, :squeeze])
            grow.bias.copy_(self.se_expand.bias[:mid])
        block.project[0].weight.copy_(self.project_conv.weight[:c_out, :mid])
        self.project_bn.copy_into(block.project[1])  # type: ignore[arg-type]
