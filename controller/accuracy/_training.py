"""Short training: train the arch's network briefly on a dataset and score its validation accuracy.

Per :meth:`ShortTrainingEstimator.estimate`: the dataset's images are fitted
to the network's input (:func:`adapt_images`) and standardised per channel
with the training split's statistics; the network is built with torch seeded
by ``seed`` and its classifier fitted to the dataset's classes
(:func:`fit_head`: the final ``nn.Linear`` is replaced when its width
differs, so a 1000-class MobileNetV3 trains on 10 digits); then ``epochs``
passes of minibatch SGD (Nesterov momentum, cosine-annealed learning rate)
or Adam, in a seeded order. The score is the top-1 accuracy on the validation
split, in [0, 1]. Deterministic for a seed on one machine and thread count.
Cost: ``epochs`` × training-set forward+backward passes plus one validation
pass; seconds for digits-sized data and small networks on a CPU.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fleetnas.controller.accuracy._base import DeployableEstimator
from fleetnas.controller.accuracy._data import Dataset, adapt_images
from fleetnas.controller.accuracy._torch_utils import build_seeded, fit_head, input_chw, logits_of
from fleetnas.controller.spaces import SearchSpace

OPTIMIZERS = ("sgd", "adam")


def _check_positive(name: str, value: object, kind: type) -> None:
    ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0  # type: ignore[operator]
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok:
        raise ValueError(
            f"ShortTrainingEstimator: {name}={value!r}, expected a positive {kind.__name__}"
        )


class ShortTrainingEstimator(DeployableEstimator):
    """Validation accuracy after a short training on ``dataset`` (see module doc).

    ``max_train_samples`` / ``max_val_samples`` cap the splits (first samples
    of a seeded permutation) to bound the cost.
    """

    name = "short_training"
    cost: ClassVar[str] = (
        "epochs x (forward+backward over the training split) + one validation pass"
    )

    def __init__(
        self,
        dataset: Dataset,
        *,
        epochs: int = 1,
        batch_size: int = 64,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        optimizer: str = "sgd",
        seed: int = 0,
        max_train_samples: int | None = None,
        max_val_samples: int | None = None,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise ValueError(f"ShortTrainingEstimator: dataset={dataset!r}, expected a Dataset")
        _check_positive("epochs", epochs, int)
        _check_positive("batch_size", batch_size, int)
        _check_positive("lr", lr, float)
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"ShortTrainingEstimator: optimizer={optimizer!r}, expected one of {OPTIMIZERS}"
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"ShortTrainingEstimator: momentum={momentum!r}, expected [0, 1)")
        if weight_decay < 0.0:
            raise ValueError(
                f"ShortTrainingEstimator: weight_decay={weight_decay!r}, expected >= 0"
            )
        for cap_name, cap in (
            ("max_train_samples", max_train_samples),
            ("max_val_samples", max_val_samples),
        ):
            if cap is not None:
                _check_positive(cap_name, cap, int)
        self.dataset = dataset
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.optimizer = optimizer
        self.seed = seed
        self.max_train_samples = max_train_samples
        self.max_val_samples = max_val_samples

    def _splits(
        self, shape: tuple[int, int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        data = self.dataset
        rng = np.random.default_rng(self.seed)
        train = rng.permutation(len(data.y_train))[: self.max_train_samples]
        val = rng.permutation(len(data.y_val))[: self.max_val_samples]
        x_train = torch.from_numpy(adapt_images(data.x_train[train], shape))
        x_val = torch.from_numpy(adapt_images(data.x_val[val], shape))
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        return (
            (x_train - mean) / std,
            torch.from_numpy(data.y_train[train]),
            (x_val - mean) / std,
            torch.from_numpy(data.y_val[val]),
        )

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        module, x_val, y_val = self._trained(space, arch)
        return _accuracy(module, x_val, y_val, self.dataset.num_classes, self.batch_size)

    def train(self, space: SearchSpace, arch: Any) -> nn.Module:
        """The network :meth:`estimate` scores, trained exactly as there, in eval mode.

        Its input is the dataset standardised per channel with the training
        split's statistics (of the capped split with ``max_train_samples``;
        :class:`~fleetnas.controller.compress.DatasetInputs`, which evaluates
        exported models, uses the whole split); its first ``num_classes``
        logits are the classes. The search exports it to score each target's
        deployed model.
        """
        module, _, _ = self._trained(space, arch)
        return module.eval()

    def deployable(self, space: SearchSpace, arch: Any) -> nn.Module:
        """:meth:`train`: the trained network is the one deployed."""
        return self.train(space, arch)

    def _trained(self, space: SearchSpace, arch: Any
                 ) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        x_train, y_train, x_val, y_val = self._splits(input_chw(space, arch))
        classes = self.dataset.num_classes
        with torch.random.fork_rng(devices=[]):
            module = build_seeded(space, arch, self.seed)
            module, _ = fit_head(module, classes, x_train[:2])
            self._train(module, x_train, y_train, classes)
        return module, x_val, y_val

    def _train(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int) -> None:
        n = len(y)
        steps_per_epoch = max(1, math.ceil(n / self.batch_size))
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer: torch.optim.Optimizer
        if self.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.momentum,
                nesterov=self.momentum > 0,
                weight_decay=self.weight_decay,
            )
        else:
            optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=self.epochs * steps_per_epoch
        )
        generator = torch.Generator().manual_seed(self.seed)
        loss_fn = nn.CrossEntropyLoss()
        module.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, self.batch_size):
                index = order[start : start + self.batch_size]
                if len(index) < 2:  # BatchNorm cannot train on a single sample
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(logits_of(module(x[index]))[:, :classes], y[index])
                loss.backward()
                optimizer.step()
                schedule.step()


def _accuracy(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int, batch: int
) -> float:
    module.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch):
            logits = logits_of(module(x[start : start + batch]))[:, :classes]
            correct += int((logits.argmax(dim=1) == y[start : start + batch]).sum())
    return correct / len(y)
