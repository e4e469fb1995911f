"""The supernet training loop: seeded, checkpointed every epoch, resumable, with progress.

:func:`train` runs ``config.epochs`` epochs of minibatch SGD (Nesterov
momentum when ``momentum > 0``, weight decay, learning rate cosine-annealed
per step from ``lr`` to 0 over the whole run); each step's subnets come from
the config's sampling rule (``_sampling.py``). Batches are a fresh
permutation per epoch (a trailing batch of one image is dropped: BatchNorm
cannot train on it).

**Determinism and resume.** Every random draw of epoch ``e`` comes from
generators seeded by ``(config.seed, e)``, and the initial weights from
``config.seed`` (:func:`~._registry.build_supernet`); nothing depends on the
caller's RNG. After each epoch the checkpoint (weights, BN buffers,
optimizer and schedule state, epochs done, timings) replaces the previous
one atomically, so a run killed at any moment resumes from its last finished
epoch and ends with the same weights as an uninterrupted run, bit for bit,
on one machine and thread count (tested with SIGKILL).
"""

from __future__ import annotations

import io
import math
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._config import TrainConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.accuracy.supernet._inputs import PreparedData
from fleetnas.controller.accuracy.supernet._sampling import StepBatch, make_rule
from fleetnas.controller.atomic_files import atomic_writer

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class SupernetProgress:
    """Passed to the progress callback after each training step or evaluated subnet.

    ``phase`` is ``"train"`` (``epoch`` of ``epochs``, ``step`` of ``steps``,
    ``loss`` the step's mean loss) or ``"eval"`` (``step`` of ``steps``
    subnets; ``loss`` is the subnet's accuracy; ``detail`` its encoding).
    ``seconds`` is the wall time since the call began.
    """

    phase: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    seconds: float
    detail: str = ""


ProgressCallback = Callable[[SupernetProgress], None]


@dataclass(frozen=True)
class TrainOutcome:
    """``epochs_done`` in all (``resumed_from`` of them before this call) and each epoch's seconds."""

    epochs_done: int
    resumed_from: int
    epoch_seconds: tuple[float, ...]


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Batches per epoch: a trailing batch of a single image is dropped."""
    full, rest = divmod(train_size, batch_size)
    return full + (1 if rest >= 2 else 0)


def _epoch_generators(seed: int, epoch: int) -> tuple[torch.Generator, random.Random]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return generator, random.Random(f"fleetnas-supernet:{seed}:{epoch}")


def _optimizer(
    net: Supernet, config: TrainConfig, total_steps: int
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return optimizer, schedule


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``; SupernetError when it is unreadable or of another format."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise SupernetError(
            f"{path}: unreadable supernet checkpoint ({type(exc).__name__}); "
            "delete its folder to retrain"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SupernetError(
            f"{path}: not a format-{CHECKPOINT_FORMAT} supernet checkpoint; delete its folder to retrain"
        )
    return state


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_writer(path, binary=True, fsync=True) as handle:
        handle.write(buffer.getvalue())


def _resume(
    path: Path, net: Supernet, optimizer: Any, schedule: Any, config: TrainConfig
) -> tuple[int, list[float]]:
    if not path.exists():
        return 0, []
    state = load_checkpoint(path)
    if state.get("config") != config.to_dict():
        raise SupernetError(
            f"{path}: checkpoint of another training config; delete its folder to retrain"
        )
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return int(state["epochs_done"]), [float(s) for s in state["epoch_seconds"]]


def train(
    net: Supernet,
    data: PreparedData,
    config: TrainConfig,
    checkpoint: str | Path,
    *,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[TrainOutcome], None] | None = None,
) -> TrainOutcome:
    """Train ``net`` for ``config.epochs`` epochs, resuming from ``checkpoint`` if it exists.

    ``config`` must have its sampling resolved (:func:`~._registry.resolved`);
    the checkpoint must come from the same config (else SupernetError).
    ``on_epoch`` is called after each epoch's checkpoint is written. Leaves
    ``net`` in train mode with the final weights.
    """
    path = Path(checkpoint)
    rule = make_rule(config, net)
    steps = steps_per_epoch(data.train_size, config.batch_size)
    if steps == 0:
        raise SupernetError(f"{data.train_size} training images: need at least 2 for a batch")
    optimizer, schedule = _optimizer(net, config, config.epochs * steps)
    done, epoch_seconds = _resume(path, net, optimizer, schedule, config)
    started = time.monotonic()
    net.train()
    for epoch in range(done, config.epochs):
        epoch_start = time.monotonic()
        generator, rng = _epoch_generators(config.seed, epoch)
        order = torch.randperm(data.train_size, generator=generator)
        rule.begin_epoch(net, optimizer, epoch=epoch, epochs=config.epochs)
        for step in range(steps):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = rule.step(net, StepBatch(data, index), rng, progress=epoch / config.epochs)
            if not math.isfinite(loss):
                raise SupernetError(
                    f"the training loss became {loss} at epoch {epoch + 1} step {step + 1}; "
                    f"lower lr (now {config.lr})"
                )
            optimizer.step()
            schedule.step()
            if progress is not None:
                seconds = time.monotonic() - started
                progress(
                    SupernetProgress("train", epoch + 1, config.epochs, step + 1, steps, loss, seconds)
                )
        epoch_seconds.append(time.monotonic() - epoch_start)
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "epochs_done": epoch + 1,
            "epoch_seconds": list(epoch_seconds),
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
        }
        _save_checkpoint(path, state)
        if on_epoch is not None:
            on_epoch(TrainOutcome(epoch + 1, done, tuple(epoch_seconds)))
    return TrainOutcome(config.epochs, done, tuple(epoch_seconds))
