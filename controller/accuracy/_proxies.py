"""Training-free proxies: NASWOT and SynFlow, on the freshly initialised network.

NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training"):
push a minibatch through the untrained network, record for every input the
binary code of which units of every activation layer are active (input > 0),
and score ``log det K`` where ``K[i, j]`` counts the units on which inputs i
and j agree. Networks that give different inputs different activation
patterns score higher. Activation layers are the modules of types in
:data:`ACTIVATIONS` (for all of them, output > 0 exactly when input > 0,
except ReLU6/Hardtanh's saturation, which does not change the sign);
functional activations (``F.relu``) are invisible to the hooks. BatchNorm
runs on batch statistics (train mode), as in the paper. We add ``ridge``
(default 1, one agreeing unit) to K's diagonal: K is positive semi-definite,
so ``K + I`` is definite and degenerate networks (all inputs with one code)
get a finite, minimal score instead of ``-inf``; against the tens of
thousands of units of a real network the shift is negligible. Cost: one
forward pass of ``batch_size`` inputs.

SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by
iteratively conserving synaptic flow"): replace every parameter by its
absolute value, feed one all-ones input, let ``R`` be the sum of the outputs,
and score ``sum |θ ⊙ ∂R/∂θ|`` over the weights of convolutions and linear
layers (parameters with 2+ dimensions; biases and normalisation scales
excluded, as in the paper's prunable set). BatchNorm uses its (fresh)
running statistics (eval mode). The whole computation is in float64, whose
range (1e308) holds the products of a few hundred layers' absolute weights;
a score that still overflows raises EstimatorError. A network whose output
does not depend on its weights (e.g. NAS-Bench-201 with ``none`` on every
edge) scores 0. Cost: one forward and one backward pass of one input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fleetnas.controller.accuracy._base import AccuracyEstimator
from fleetnas.controller.accuracy._data import Dataset, adapt_images
from fleetnas.controller.accuracy._errors import EstimatorError
from fleetnas.controller.accuracy._torch_utils import build_seeded, input_chw, logits_of
from fleetnas.controller.spaces import SearchSpace

#: module types whose inputs NASWOT codes (sign of the pre-activation)
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
)


def naswot_score(module: nn.Module, inputs: torch.Tensor, *, ridge: float = 1.0) -> float:
    """``log det (K + ridge·I)`` of ``module``'s activation codes on ``inputs`` (see module doc).

    Runs ``module`` in train mode without gradients (its BatchNorm running
    statistics are updated). Raises EstimatorError when the module has no
    activation module from :data:`ACTIVATIONS`.
    """
    batch = inputs.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64)

    def hook(_module: nn.Module, args: tuple[Any, ...], _output: Any) -> None:
        codes = (args[0].detach().reshape(batch, -1) > 0).to(torch.float32)
        # Per-layer counts stay below 2^24, exact in float32; the sum is in float64.
        agree = codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T
        kernel.add_(agree.to(torch.float64))

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, ACTIVATIONS)
    ]
    if not handles:
        raise EstimatorError(
            "NASWOT needs activation modules (nn.ReLU, nn.Hardswish, ...); the network has none"
        )
    try:
        module.train()
        with torch.no_grad():
            module(inputs)
    finally:
        for handle in handles:
            handle.remove()
    kernel += ridge * torch.eye(batch, dtype=torch.float64)
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0:
        return -math.inf
    return float(logdet)


def synflow_score(module: nn.Module, input_shape: Sequence[int]) -> float:
    """SynFlow of ``module`` (see module doc) for one input of ``input_shape`` (batch dim included).

    Converts ``module`` to float64 and replaces its parameters by their
    absolute values in place: pass a throwaway copy.
    """
    module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.abs_()
    module.zero_grad(set_to_none=True)
    shape = (1, *tuple(input_shape)[1:])
    output = logits_of(module(torch.ones(shape, dtype=torch.float64)))
    total = torch.sum(output)
    if not total.requires_grad:
        return 0.0
    total.backward()
    score = 0.0
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() >= 2 and p.grad is not None:
                score += float(torch.sum(torch.abs(p * p.grad)))
    if not math.isfinite(score):
        raise EstimatorError("SynFlow overflowed float64 for this network")
    return score


class NaswotEstimator(AccuracyEstimator):
    """NASWOT score of the arch's freshly initialised network (higher is better).

    Inputs: the first ``batch_size`` training images of ``data`` (in a seeded
    order, fitted to the network's input), or, without ``data``, seeded
    standard-normal noise. ``input_shape`` ``(C, H, W)`` overrides the space's.
    Weights are initialised with torch seeded by ``seed``.
    """

    name = "naswot"
    cost: ClassVar[str] = "one forward pass of batch_size inputs through the untrained network"

    def __init__(
        self,
        *,
        batch_size: int = 32,
        seed: int = 0,
        data: Dataset | None = None,
        input_shape: Sequence[int] | None = None,
        ridge: float = 1.0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(
                f"NaswotEstimator: batch_size={batch_size!r}, expected an integer >= 2"
            )
        if not isinstance(ridge, (int, float)) or ridge < 0:
            raise ValueError(f"NaswotEstimator: ridge={ridge!r}, expected a number >= 0")
        if input_shape is not None and len(input_shape) != 3:
            raise ValueError(f"NaswotEstimator: input_shape={input_shape!r}, expected (C, H, W)")
        self.batch_size = batch_size
        self.seed = seed
        self.data = data
        self.input_shape: tuple[int, int, int] | None = None
        if input_shape is not None:
            c, h, w = (int(v) for v in input_shape)
            self.input_shape = (c, h, w)
        self.ridge = float(ridge)

    def inputs(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """The minibatch this estimator scores with, for network inputs of ``shape``."""
        if self.data is None:
            generator = torch.Generator().manual_seed(self.seed)
            return torch.randn((self.batch_size, *shape), generator=generator)
        order = np.random.default_rng(self.seed).permutation(len(self.data.y_train))
        chosen = self.data.x_train[order[: self.batch_size]]
        if len(chosen) < 2:
            raise EstimatorError(f"{self.data.name}: too few training images for a NASWOT batch")
        return torch.from_numpy(adapt_images(chosen, shape))

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        shape = self.input_shape or input_chw(space, arch)
        x = self.inputs(shape)
        with torch.random.fork_rng(devices=[]):
            module = build_seeded(space, arch, self.seed)
            return naswot_score(module, x, ridge=self.ridge)


class SynflowEstimator(AccuracyEstimator):
    """SynFlow score of the arch's freshly initialised network (higher is better; 0 for a dead net)."""

    name = "synflow"
    cost: ClassVar[str] = "one forward and one backward pass of a single input, in float64"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        shape = space.input_shape(arch)
        with torch.random.fork_rng(devices=[]):
            module = build_seeded(space, arch, self.seed)
            return synflow_score(module, shape)
