"""Scoring a subnet: inherit the shared weights, recalibrate batch norm, top-1 on validation.

The running statistics a supernet's batch norms gather during training mix
every subnet it trained, so they fit none of them. :func:`recalibrate_bn`
recomputes them for one network: reset, then forward a few training batches
in train mode without gradients, with ``momentum=None`` so the statistics
are the plain average over those batches (not an exponential one); the
affine weights are untouched. :func:`subnet_accuracy` does that on the
supernet path and restores the supernet's own buffers afterwards, so
scoring never changes the supernet; a materialised subnet
(:meth:`Supernet.materialise`) recalibrated on the same batches gives the
same logits.

Cost per subnet: ``bn_batches`` forward passes of ``batch_size`` images plus
one forward pass of the validation split; no backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._config import EvalConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.accuracy.supernet._inputs import PreparedData


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer of ``module`` (elastic ones included)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_bn(
    module: nn.Module,
    batches: Iterable[torch.Tensor],
    forward: Callable[[torch.Tensor], Any] | None = None,
) -> None:
    """Recompute the running statistics of ``module``'s batch norms on ``batches``.

    ``forward`` runs one batch (default: ``module(batch)``). Leaves
    ``module`` in eval mode. Batch norms the forward does not reach end
    reset (mean 0, variance 1).
    """
    norms = batch_norms(module)
    momenta = [bn.momentum for bn in norms]
    run = forward if forward is not None else module
    try:
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None
        module.train()
        with torch.no_grad():
            for batch in batches:
                run(batch)
    finally:
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
        module.eval()


@contextmanager
def preserved_bn_stats(module: nn.Module) -> Iterator[None]:
    """Restore every batch norm's running statistics and ``module``'s mode on exit."""
    saved = [
        {name: buffer.clone() for name, buffer in bn.named_buffers(recurse=False)}
        for bn in batch_norms(module)
    ]
    was_training = module.training
    try:
        yield
    finally:
        with torch.no_grad():
            for bn, buffers in zip(batch_norms(module), saved, strict=True):
                for name, value in buffers.items():
                    getattr(bn, name).copy_(value)
        module.train(was_training)


def calibration_batches(
    net: Supernet, arch: Any, data: PreparedData, config: EvalConfig
) -> list[torch.Tensor]:
    """The BN-recalibration batches for ``arch`` (the same images for every arch)."""
    batches = data.calibration_batches(
        net.input_chw(arch), batches=config.bn_batches, batch_size=config.batch_size, seed=config.seed
    )
    if not batches:
        raise SupernetError(f"{data.train_size} training images: too few to recalibrate BN")
    return batches


def top1(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    data: PreparedData,
    shape: tuple[int, int, int],
    config: EvalConfig,
) -> float:
    """Top-1 accuracy of ``logits_of`` on the (capped) validation split, in [0, 1]."""
    correct = total = 0
    with torch.no_grad():
        batches = data.val_batches(
            shape, batch_size=config.batch_size, limit=config.max_val_samples, seed=config.seed
        )
        for x, y in batches:
            correct += int((logits_of(x).argmax(dim=1) == y).sum())
            total += len(y)
    return correct / total


def subnet_accuracy(net: Supernet, arch: Any, data: PreparedData, config: EvalConfig) -> float:
    """Validation top-1 of ``arch`` on the supernet's weights after BN recalibration."""
    batches = calibration_batches(net, arch, data, config)
    with preserved_bn_stats(net):
        recalibrate_bn(net, batches, lambda x: net(x, arch))
        return top1(lambda x: net(x, arch), data, net.input_chw(arch), config)


def materialised_subnet(
    net: Supernet, arch: Any, data: PreparedData, config: EvalConfig
) -> nn.Module:
    """``space.build(arch)`` with the inherited weights and recalibrated BN, in eval mode.

    The deployable form of the subnet :func:`subnet_accuracy` scores (same
    batches, so the same statistics): export it to ONNX, quantise it, etc.
    """
    module = net.materialise(arch)
    recalibrate_bn(module, calibration_batches(net, arch, data, config))
    return module
