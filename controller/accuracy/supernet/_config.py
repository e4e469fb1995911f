"""Training and evaluation settings of a supernet, validated once, JSON round-trippable.

:class:`TrainConfig` is everything that changes the trained weights; it is
part of the store key (:func:`~fleetnas.controller.accuracy.supernet.supernet_key`).
:class:`EvalConfig` only changes how a subnet is scored (BN recalibration
and the validation pass), so it is not part of the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


def _positive_int(owner: str, name: str, value: object, *, zero: bool = False) -> None:
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name}={value!r}, expected an integer >= {low}")


def _number(owner: str, name: str, value: object, low: float, high: float | None) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value < high  # type: ignore[operator]
    if not ok:
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: {name}={value!r}, expected a number in {bound}")


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown settings {unknown}; known: {sorted(names)}")
    return cls(**data)


@dataclass(frozen=True)
class TrainConfig:
    """How a supernet is trained (see ``docs/supernet.md``).

    ``sampling`` names a rule of
    :data:`~fleetnas.controller.accuracy.supernet.SAMPLING_RULES`: ``uniform``
    (one uniformly sampled subnet per step), ``sandwich`` (largest, smallest
    and ``sandwich_random`` random subnets per step) or ``progressive``
    (sandwich over choices that widen in phases); ``None`` takes the
    supernet's default (nb201: uniform; mbv3: sandwich). ``distill`` trains
    the sandwich's smaller subnets on the largest's soft predictions
    (in-place distillation). ``kernel_transform`` adds OFA's learned kernel
    transform matrices to mbv3's elastic depthwise kernels.
    ``max_train_samples`` caps the training split (the first samples of a
    seeded permutation).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    sampling: str | None = None
    sandwich_random: int = 2
    distill: bool = False
    kernel_transform: bool = False
    max_train_samples: int | None = None

    def __post_init__(self) -> None:
        owner = "TrainConfig"
        _positive_int(owner, "epochs", self.epochs)
        _positive_int(owner, "batch_size", self.batch_size)
        if self.batch_size < 2:
            raise ValueError(f"{owner}: batch_size={self.batch_size}, BatchNorm needs >= 2")
        _number(owner, "lr", self.lr, 1e-12, None)
        _number(owner, "momentum", self.momentum, 0.0, 1.0)
        _number(owner, "weight_decay", self.weight_decay, 0.0, None)
        _positive_int(owner, "seed", self.seed, zero=True)
        _positive_int(owner, "sandwich_random", self.sandwich_random, zero=True)
        if self.sampling is not None and not isinstance(self.sampling, str):
            raise ValueError(f"{owner}: sampling={self.sampling!r}, expected a rule name or None")
        for flag in ("distill", "kernel_transform"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{owner}: {flag}={getattr(self, flag)!r}, expected a bool")
        if self.max_train_samples is not None:
            _positive_int(owner, "max_train_samples", self.max_train_samples)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe settings, every field (the store key hashes this)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; missing fields take defaults, unknown ones raise ValueError."""
        return _from_dict(cls, data)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class EvalConfig:
    """How a subnet is scored: BN recalibration, then top-1 on the validation split.

    Batch-norm statistics are recomputed on ``bn_batches`` training batches
    of ``batch_size`` images (the first of a permutation seeded by ``seed``,
    the same for every arch); ``max_val_samples`` caps the validation split.
    """

    bn_batches: int = 4
    batch_size: int = 128
    seed: int = 0
    max_val_samples: int | None = None

    def __post_init__(self) -> None:
        owner = "EvalConfig"
        _positive_int(owner, "bn_batches", self.bn_batches)
        _positive_int(owner, "batch_size", self.batch_size)
        if self.batch_size < 2:
            raise ValueError(f"{owner}: batch_size={self.batch_size}, BatchNorm needs >= 2")
        _positive_int(owner, "seed", self.seed, zero=True)
        if self.max_val_samples is not None:
            _positive_int(owner, "max_val_samples", self.max_val_samples)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        return _from_dict(cls, data)  # type: ignore[no-any-return]
