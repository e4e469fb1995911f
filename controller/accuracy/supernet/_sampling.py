"""Sampling rules: which subnets one training step trains, and on which loss.

A :class:`SamplingRule` runs the forward and backward passes of one step
(gradients accumulate over its subnets; the trainer zeroes them before and
steps the optimizer after) and returns the step's mean loss. Its draws come
only from the ``random.Random`` it is given, so a step is reproducible from
the trainer's per-epoch seed.

* ``uniform`` (:class:`UniformRule`): one subnet drawn uniformly (single-path
  one-shot).
* ``sandwich`` (:class:`SandwichRule`): the largest, the smallest and
  ``sandwich_random`` random subnets; with ``distill``, every subnet but the
  largest learns the largest's softened predictions of the same images
  (in-place distillation) instead of the labels.
* ``progressive`` (:class:`ProgressiveRule`, mbv3 only): OFA's progressive
  shrinking as equal phases of the epochs: the largest subnet alone; then
  the sandwich over elastic kernels; then kernels and depths; then kernels,
  depths and expand ratios (every stage at its largest width); and, for a
  space with several width choices, a fifth phase over everything, widths
  included, which starts by sorting each stage's channels by importance
  (:meth:`MBv3Supernet.sort_channels`, optimizer momentum permuted alike).
  The resolution is elastic throughout. A space with one width choice keeps
  the four phases.

A rule may act between epochs (:meth:`SamplingRule.begin_epoch`, before the
epoch's first step); what it does must depend only on the epoch number and
the weights, so that a resumed run does the same.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._config import TrainConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.accuracy.supernet._inputs import PreparedData, Shape
from fleetnas.controller.accuracy.supernet._mbv3 import FULL, Choices, MBv3Supernet
from fleetnas.controller.spaces._mbv3 import DEPTHS, EXPANDS


class StepBatch:
    """One step's training images and labels; inputs fitted per subnet shape, once each."""

    def __init__(self, data: PreparedData, index: torch.Tensor) -> None:
        self._data = data
        self._index = index
        self.labels = data.y_train[index]
        self._inputs: dict[Shape, torch.Tensor] = {}

    def inputs(self, shape: Shape) -> torch.Tensor:
        if shape not in self._inputs:
            self._inputs[shape] = self._data.train_inputs(self._index, shape)
        return self._inputs[shape]


def _soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class SamplingRule(abc.ABC):
    """Trains the subnets of one step (see module doc)."""

    name: ClassVar[str]
    #: the supernet kinds this rule can train; None for every kind
    kinds: ClassVar[frozenset[str] | None] = None

    def check(self, net: Supernet) -> None:
        """Raise SupernetError when this rule cannot train ``net`` (see :attr:`kinds`)."""
        if self.kinds is not None and net.kind not in self.kinds:
            raise SupernetError(
                f"sampling {self.name!r} trains {', '.join(sorted(self.kinds))} only, not "
                f"{net.kind}; use 'uniform' or 'sandwich'"
            )

    def begin_epoch(
        self, net: Supernet, optimizer: torch.optim.Optimizer, *, epoch: int, epochs: int
    ) -> None:
        """Called before the first step of ``epoch`` (0-based) of ``epochs``; nothing by default."""
        return None

    @abc.abstractmethod
    def step(
        self, net: Supernet, batch: StepBatch, rng: random.Random, *, progress: float
    ) -> float:
        """Forward and backward this step's subnets; ``progress`` is the epoch's share of training in [0, 1)."""


def _train_on_labels(net: Supernet, batch: StepBatch, arch: Any) -> torch.Tensor:
    """Forward and backward ``arch`` on the labels; returns its logits (detached)."""
    logits = net(batch.inputs(net.input_chw(arch)), arch)
    F.cross_entropy(logits, batch.labels).backward()
    return logits.detach()


class UniformRule(SamplingRule):
    """One uniformly sampled subnet per step."""

    name: ClassVar[str] = "uniform"

    def step(
        self, net: Supernet, batch: StepBatch, rng: random.Random, *, progress: float
    ) -> float:
        logits = _train_on_labels(net, batch, net.sample(rng))
        return float(F.cross_entropy(logits, batch.labels))


class SandwichRule(SamplingRule):
    """Largest + smallest + ``n_random`` random subnets per step, optionally distilled."""

    name: ClassVar[str] = "sandwich"

    def __init__(self, *, n_random: int = 2, distill: bool = False) -> None:
        self.n_random = n_random
        self.distill = distill

    def _subnets(self, net: Supernet, rng: random.Random, progress: float) -> list[Any]:
        """The largest first, then the others."""
        return [net.largest(), net.smallest(), *(net.sample(rng) for _ in range(self.n_random))]

    def step(
        self, net: Supernet, batch: StepBatch, rng: random.Random, *, progress: float
    ) -> float:
        largest, *others = self._subnets(net, rng, progress)
        teacher = _train_on_labels(net, batch, largest)
        losses = [float(F.cross_entropy(teacher, batch.labels))]
        soft = teacher.softmax(dim=1)
        for arch in others:
            logits = net(batch.inputs(net.input_chw(arch)), arch)
            if self.distill:
                loss = _soft_cross_entropy(logits, soft)
            else:
                loss = F.cross_entropy(logits, batch.labels)
            loss.backward()
            losses.append(float(loss.detach()))
        return sum(losses) / len(losses)


#: the phases of progressive shrinking; ``None`` trains the largest subnet alone
PHASES: tuple[Choices | None, ...] = (
    None,
    Choices(expands=(max(EXPANDS),), depths=(max(DEPTHS),), elastic_width=False),
    Choices(expands=(max(EXPANDS),), elastic_width=False),
    Choices(elastic_width=False),
    FULL,
)
#: the phases for a space with a single width choice (the width phase would repeat the last)
FIXED_WIDTH_PHASES: tuple[Choices | None, ...] = PHASES[:3] + (FULL,)


def phases(net: Supernet) -> tuple[Choices | None, ...]:
    """The progressive-shrinking phases of ``net`` (an mbv3 supernet)."""
    assert isinstance(net, MBv3Supernet)
    return PHASES if len(net.mbv3.width_choices) > 1 else FIXED_WIDTH_PHASES


class ProgressiveRule(SandwichRule):
    """OFA's progressive shrinking (see module doc), a sandwich within each phase."""

    name: ClassVar[str] = "progressive"
    kinds: ClassVar[frozenset[str] | None] = frozenset({MBv3Supernet.kind})

    @staticmethod
    def phase(progress: float, net: Supernet) -> Choices | None:
        """The choices trained at ``progress`` (``None``: the largest subnet only)."""
        table = phases(net)
        return table[min(len(table) - 1, int(progress * len(table)))]

    def begin_epoch(
        self, net: Supernet, optimizer: torch.optim.Optimizer, *, epoch: int, epochs: int
    ) -> None:
        """Sort the channels by importance at the start of the width phase."""
        choices = self.phase(epoch / epochs, net)
        if choices is None or not choices.elastic_width or phases(net) == FIXED_WIDTH_PHASES:
            return
        if epoch > 0 and self.phase((epoch - 1) / epochs, net) == choices:
            return  # sorted when the phase began (the checkpoint holds the sorted weights)
        assert isinstance(net, MBv3Supernet)
        net.sort_channels(optimizer)

    def _subnets(self, net: Supernet, rng: random.Random, progress: float) -> list[Any]:
        assert isinstance(net, MBv3Supernet)
        choices = self.phase(progress, net)
        if choices is None:
            return [net.largest()]
        return [
            net.largest(),
            net.restricted_smallest(choices),
            *(net.restricted_sample(rng, choices) for _ in range(self.n_random)),
        ]


def _uniform(config: TrainConfig) -> SamplingRule:
    if config.distill:
        raise SupernetError(
            "distill=True needs a rule with a largest subnet to learn from: "
            "sampling 'sandwich' or 'progressive'"
        )
    return UniformRule()


#: rule name -> factory from a training config; the one list of rules
SAMPLING_RULES: dict[str, Callable[[TrainConfig], SamplingRule]] = {
    UniformRule.name: _uniform,
    SandwichRule.name: lambda c: SandwichRule(n_random=c.sandwich_random, distill=c.distill),
    ProgressiveRule.name: lambda c: ProgressiveRule(n_random=c.sandwich_random, distill=c.distill),
}


def make_rule(config: TrainConfig, net: Supernet) -> SamplingRule:
    """The rule ``config.sampling`` names (the supernet's default when None), checked against ``net``."""
    name = config.sampling or net.default_sampling
    factory = SAMPLING_RULES.get(name)
    if factory is None:
        raise SupernetError(
            f"sampling={name!r} is not a rule; expected one of {sorted(SAMPLING_RULES)}"
        )
    rule = factory(config)
    rule.check(net)
    return rule
