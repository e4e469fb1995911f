"""The supernet contract: one network holding every subnet of a search space.

A :class:`Supernet` is a ``torch.nn.Module`` whose ``forward(x, arch)`` runs
the subnet ``arch`` of its space on the shared weights; ``x`` must already
have the subnet's input shape (:meth:`Supernet.input_chw`). Two subnets that
contain the same choice at the same place use the same parameter tensors.
Implementations hold no state besides their parameters and buffers, so the
same weights give the same outputs; they are not thread-safe (batch-norm
buffers change in train mode).

What a caller may rely on:

* :meth:`~Supernet.largest` and :meth:`~Supernet.smallest` are archs of the
  space (what "largest" means is each implementation's docstring);
  :meth:`~Supernet.sample` draws from the space's own uniform sampler (or a
  restriction of it, for rules such as progressive shrinking).
* :meth:`~Supernet.materialise` returns ``space.build(arch)`` (its classifier
  resized to the supernet's classes when they differ) with the inherited
  weights and batch-norm buffers copied in: in eval mode it gives the
  supernet path's logits (within float rounding), and it exports to ONNX like
  any built arch.
* An arch of another space raises :class:`~fleetnas.controller.spaces.UnknownArch`.
"""

from __future__ import annotations

import abc
import random
from typing import Any, ClassVar

import torch
from torch import nn

from fleetnas.controller.accuracy._torch_utils import fit_head, input_chw
from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.spaces import SearchSpace


class Supernet(nn.Module, abc.ABC):
    """Weight-sharing network over ``space`` with a ``num_classes``-way classifier."""

    #: the space's registry name this implementation serves, e.g. ``"nb201"``
    kind: ClassVar[str]
    #: bump when the same state dict starts to mean other weights (part of the store key)
    version: ClassVar[int] = 1
    #: the sampling rule used when the training config names none
    default_sampling: ClassVar[str]

    @classmethod
    def key_version(cls, space: SearchSpace) -> int:
        """The version that keys this supernet of ``space`` in the store: :attr:`version`,
        unless an implementation knows that ``space``'s supernet did not change with it."""
        return cls.version

    def __init__(self, space: SearchSpace, num_classes: int) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, arch: Any) -> torch.Tensor:  # type: ignore[override]
        """Logits ``(N, num_classes)`` of subnet ``arch`` on inputs ``x``."""

    @abc.abstractmethod
    def largest(self) -> Any:
        """The subnet with the most parameters (every choice at its maximum)."""

    @abc.abstractmethod
    def smallest(self) -> Any:
        """The smallest subnet the implementation trains and reports (see its docstring)."""

    @abc.abstractmethod
    def _copy_into(self, module: nn.Module, arch: Any) -> None:
        """Copy the weights and BN buffers of ``arch`` into ``module`` = ``space.build(arch)``."""

    def sample(self, rng: random.Random) -> Any:
        """A uniformly random arch (the space's sampler, driven by ``rng``)."""
        return self.space.sample(rng)

    def input_chw(self, arch: Any) -> tuple[int, int, int]:
        """``(C, H, W)`` of the subnet's input."""
        return input_chw(self.space, arch)

    def materialise(self, arch: Any) -> nn.Module:
        """``space.build(arch)`` holding the inherited weights, in eval mode (see module doc)."""
        module = self.space.build(arch)
        example = torch.zeros((2, *self.input_chw(arch)))
        module, width = fit_head(module, self.num_classes, example)
        if width != self.num_classes:
            raise SupernetError(
                f"{self.space.identity()} builds {width} logits, the supernet {self.num_classes}"
            )
        with torch.no_grad():
            self._copy_into(module, arch)
        return module.eval()
