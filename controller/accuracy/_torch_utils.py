"""Torch helpers shared by the estimators: seeded builds, logits, classifier-head adaptation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fleetnas.controller.accuracy._errors import EstimatorError
from fleetnas.controller.spaces import SearchSpace


def build_seeded(space: SearchSpace, arch: Any, seed: int) -> nn.Module:
    """``space.build(arch)`` with torch's RNG seeded; call inside ``torch.random.fork_rng``."""
    torch.manual_seed(seed)
    module = space.build(arch)
    if not isinstance(module, nn.Module):
        raise EstimatorError(
            f"{space.name}.build returned {type(module).__name__}, not a torch.nn.Module"
        )
    return module


def logits_of(output: Any) -> torch.Tensor:
    """The network's logits: the output itself, or the last element of a tuple/list output."""
    if isinstance(output, (tuple, list)) and output:
        output = output[-1]
    if not isinstance(output, torch.Tensor):
        raise EstimatorError(
            f"the network returned {type(output).__name__}, expected a tensor of logits"
        )
    return output.flatten(1) if output.dim() > 2 else output


def input_chw(space: SearchSpace, arch: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of the arch's image input; EstimatorError for non-image inputs."""
    shape = tuple(space.input_shape(arch))
    if len(shape) != 4:
        raise EstimatorError(
            f"{space.name} takes inputs of shape {shape}; image estimators need (N, C, H, W)"
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def fit_head(module: nn.Module, num_classes: int, example: torch.Tensor) -> tuple[nn.Module, int]:
    """Make ``module`` output at least ``num_classes`` logits; returns it and its logit width.

    When the width differs from ``num_classes``, the last ``nn.Linear`` (in
    module order) that produces the logits is replaced by a fresh
    ``nn.Linear(in_features, num_classes)``. Failing that, a wider output is
    kept and callers use its first ``num_classes`` logits. Raises
    EstimatorError when neither works.
    """
    width = _width(module, example)
    if width == num_classes:
        return module, width
    last: tuple[nn.Module, str, nn.Linear] | None = None
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Linear) and child.out_features == width:
                last = (parent, child_name, child)
    if last is not None:
        parent, child_name, old = last
        setattr(
            parent, child_name, nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        )
        new_width = _width(module, example)
        if new_width == num_classes:
            return module, new_width
        setattr(parent, child_name, old)
    if width > num_classes:
        return module, width
    raise EstimatorError(
        f"the network outputs {width} logits and has no final nn.Linear to resize; "
        f"the dataset has {num_classes} classes (build the space with num_classes={num_classes})"
    )


def _width(module: nn.Module, example: torch.Tensor) -> int:
    was_training = module.training
    module.eval()
    with torch.no_grad():
        width = logits_of(module(example)).shape[1]
    module.train(was_training)
    return int(width)
