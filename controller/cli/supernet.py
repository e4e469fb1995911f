"""``fleetnas supernet train|eval|show``: weight-sharing supernets beside the cost DB.

Supernets live in ``supernets/`` in the cost database's folder (``--db``),
the same store ``fleetnas search --accuracy supernet:DATA`` uses, one per
(space, dataset hash, training config). ``train`` trains one (or resumes an
interrupted run; a finished one is reused), ``eval`` scores archs on a
trained one, ``show`` lists what is stored. ``train`` and ``eval`` name the
supernet by the flags that define it (``--space``, ``--data`` and the
training flags), so the same command line finds the same supernet. The
library is :mod:`fleetnas.controller.accuracy.supernet`; see
``docs/supernet.md``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._errors import one_line_errors
from fleetnas.controller.cli._options import collect_params
from fleetnas.controller.cli._progress import ProgressEvent, progress, quiet_option
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.spaces import SearchSpace, UnknownArch, UnknownSpace, get_space

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TrainFlags:
    """``--data`` and the training flags: together with the space, which supernet."""

    data: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    max_train_samples: int | None
    sampling: str | None

    def config(self) -> Any:
        from fleetnas.controller.accuracy.supernet import TrainConfig

        try:
            return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                               seed=self.seed, max_train_samples=self.max_train_samples,
                               sampling=self.sampling)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc


def train_options(func: F) -> F:
    """``--data``, ``--epochs``, ``--batch-size``, ``--lr``, ``--seed``,
    ``--max-train-samples``, ``--sampling``, passed on as ``train``."""
    func = collect_params(func, "train", TrainFlags, ("data", "epochs", "batch_size", "lr", "seed",
                                                      "max_train_samples", "sampling"))
    for option in reversed([
        click.option("--data", required=True, metavar="DATA",
                     help="digits, mnist5k, synthetic, a .npz file or an image folder."),
        click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1)),
        click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2)),
        click.option("--lr", default=0.05, show_default=True, type=float,
                     help="SGD learning rate (cosine-annealed)."),
        click.option("--seed", default=0, show_default=True, type=int,
                     help="Initial weights, batch order, sampled subnets."),
        click.option("--max-train-samples", type=click.IntRange(min=1),
                     help="Cap the training split [default: all of it]."),
        click.option("--sampling", type=click.Choice(["uniform", "sandwich", "progressive"]),
                     help="Subnet sampling rule [default: the supernet's: nb201 uniform, "
                     "mbv3 sandwich]."),
    ]):  # fmt: skip
        func = option(func)
    return func


def _errors() -> Any:
    from fleetnas.controller.accuracy import DatasetError, EstimatorError

    return one_line_errors(DatasetError, EstimatorError, UnknownSpace, UnknownArch)


def _space(flags: SpaceFlags) -> SearchSpace:
    try:
        return get_space(flags.required_name, flags.config())
    except (UnknownSpace, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc


def _workdir(ctx: click.Context) -> Path:
    """The cost DB's folder: what a search with ``--accuracy supernet:DATA`` uses too."""
    return db_path_of(ctx).resolve().parent


def _root(ctx: click.Context) -> Path:
    from fleetnas.controller.accuracy.supernet import store_root

    return store_root(_workdir(ctx))


@click.group()
def supernet() -> None:
    """Train, evaluate and list weight-sharing supernets (stored beside the cost DB).

    \b
    Example:
        fleetnas supernet train --space nb201 --data digits --epochs 10
        fleetnas supernet eval --space nb201 --data digits --epochs 10 --n 20
        fleetnas supernet show
    """


@supernet.command("train")
@space_options(required=True)
@train_options
@click.option("--bn-batches", default=4, show_default=True, type=click.IntRange(min=1),
              help="Training batches that recalibrate batch norm before the final scoring.")
@click.option("--max-val-samples", type=click.IntRange(min=1),
              help="Cap the validation split used to score the largest and smallest subnets.")
@quiet_option
@click.pass_context
def train_command(ctx: click.Context, space_flags: SpaceFlags, train: TrainFlags,
                  bn_batches: int, max_val_samples: int | None, quiet: bool) -> None:
    """Train the space's supernet on DATA, with progress; an interrupted run resumes.

    Checkpointed every epoch: run the same command again after a kill and it
    continues from the last finished epoch; once complete it is reused (by
    this command, `supernet eval` and `search --accuracy supernet:DATA`).

    \b
    Example:
        fleetnas supernet train --space nb201 --space-config '{"channels": 8}' \\
            --data digits --epochs 10
    """
    from fleetnas.controller.accuracy import EstimatorSetup, load_dataset
    from fleetnas.controller.accuracy.supernet import EvalConfig, StoredSupernetEstimator

    space, config = _space(space_flags), train.config()
    with _errors(), progress(quiet) as sink:
        estimator = StoredSupernetEstimator(load_dataset(train.data), config,
                                            EvalConfig(bn_batches=bn_batches,
                                                       max_val_samples=max_val_samples))

        def on_progress(task: str, done: int, total: int | None, detail: str) -> None:
            if sink is not None:
                sink(ProgressEvent(task, done, total, detail=detail))

        (line,) = estimator.prepare(space, EstimatorSetup(_workdir(ctx), on_progress))
    output_console().print(escape(line), highlight=False)


@supernet.command("eval")
@space_options(required=True)
@train_options
@click.argument("archs", nargs=-1, metavar="[ARCH]...")
@click.option("--n", "n", type=click.IntRange(min=1), help="Score N random archs of the space.")
@click.option("--sample-seed", default=0, show_default=True, type=int,
              help="Seed of the --n random archs.")
@click.option("--bn-batches", default=4, show_default=True, type=click.IntRange(min=1),
              help="Training batches that recalibrate batch norm per subnet.")
@click.option("--max-val-samples", type=click.IntRange(min=1),
              help="Cap the validation split [default: all of it].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@quiet_option
@click.pass_context
def eval_command(ctx: click.Context, space_flags: SpaceFlags, train: TrainFlags,
                 archs: tuple[str, ...], n: int | None, sample_seed: int, bn_batches: int,
                 max_val_samples: int | None, as_json: bool, quiet: bool) -> None:
    """Validation accuracy of each ARCH (or --n random archs) on a trained supernet.

    Each subnet inherits the supernet's weights, has its batch norm
    recalibrated on a few training batches, and is scored on the validation
    split: seconds per arch. The supernet must be trained (`supernet train`
    with the same flags).

    \b
    Example:
        fleetnas supernet eval --space nb201 --data digits --epochs 10 --n 20
        fleetnas supernet eval --space nb201 --data digits --epochs 10 \\
            '|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
    """
    from fleetnas.controller.accuracy import load_dataset
    from fleetnas.controller.accuracy.supernet import (
        EvalConfig,
        SupernetEstimator,
        SupernetNotFound,
        SupernetProgress,
        SupernetStore,
        evaluate_archs,
        resolved,
    )

    if bool(archs) == (n is not None):
        raise click.UsageError("give the archs to score, or --n N random ones (not both)")
    space, config = _space(space_flags), train.config()
    with _errors(), progress(quiet) as sink:
        chosen = [space.decode(a) for a in archs]
        rng = random.Random(sample_seed)
        chosen += [space.sample(rng) for _ in range(n or 0)]
        dataset = load_dataset(train.data)
        store = SupernetStore(_root(ctx))
        key = store.key(space, dataset, resolved(config, space))
        try:
            trained = store.load(key)
        except SupernetNotFound as exc:
            raise click.ClickException(
                f"{exc}; train it first: `fleetnas supernet train` with the same --space, "
                "--data and training flags") from None
        estimator = SupernetEstimator(trained, dataset, eval_config=EvalConfig(
            bn_batches=bn_batches, max_val_samples=max_val_samples))

        def on_progress(p: SupernetProgress) -> None:
            if sink is not None:
                sink(ProgressEvent("supernet eval", p.step, p.steps, detail=p.detail))

        scores = evaluate_archs(estimator, chosen, progress=on_progress)
    if as_json:
        click.echo(json.dumps({"key": trained.manifest.key, "scores": [
            {"arch": s.encoding, "accuracy": s.accuracy, "seconds": s.seconds} for s in scores]},
            indent=2))
        return
    table = Table(title=escape(f"supernet {trained.manifest.key}: validation accuracy"))
    for column in ("arch", "accuracy", "seconds"):
        table.add_column(column, justify="left" if column == "arch" else "right")
    for s in scores:
        table.add_row(escape(s.encoding), f"{s.accuracy:.4f}", f"{s.seconds:.2f}")
    output_console().print(table)


@supernet.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def show_command(ctx: click.Context, as_json: bool) -> None:
    """List the stored supernets: key, space, epochs, dataset and its hash, validation accuracy.

    \b
    Example:
        fleetnas supernet show
        fleetnas --db team.db supernet show --json
    """
    from fleetnas.controller.accuracy.supernet import SupernetStore

    with _errors():
        manifests = SupernetStore(_root(ctx)).manifests()
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in manifests], indent=2))
        return
    console = output_console()
    if not manifests:
        console.print(f"no supernets under {escape(str(_root(ctx)))}; train one with "
                      "`fleetnas supernet train --space S --data D`", highlight=False)
        return
    table = Table(title=escape(f"supernets in {_root(ctx)}"))
    for column in ("key", "space", "epochs", "dataset", "hash", "val accuracy"):
        table.add_column(column)
    for m in manifests:
        accuracy = ", ".join(f"{k} {v:.3f}" for k, v in (m.accuracy or {}).items()) or "-"
        table.add_row(escape(m.key), escape(m.space), f"{m.epochs_done}/{m.epochs}",
                      escape(str(m.dataset["name"])), escape(str(m.dataset["hash"])[:12]),
                      accuracy)
    console.print(table)
