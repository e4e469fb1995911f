"""``fleetnas proxies``: how well each cheap estimator ranks archs like short training on your data.

Samples ``--n`` archs of the space (seeded), trains each briefly on
``--data`` (``train:DATA`` with ``--epochs`` and the sample caps: the
reference, once per arch) and scores them with each ``--estimator`` spec
(default: the training-free proxies ``naswot`` and ``synflow``); prints each
estimator's Kendall tau-b against the trained accuracy and its seconds per
arch, so the user can choose ``--accuracy`` for ``fleetnas search``. The
comparison is :func:`fleetnas.controller.driver.compare_accuracy_specs`
(``bench/bench_accuracy.py`` runs the same); see ``docs/search.md``.
"""

from __future__ import annotations

import json
import random

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._progress import ProgressEvent, progress, quiet_option
from fleetnas.controller.cli._results import search_errors
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.driver import (
    DriverError,
    accuracy_label,
    check_accuracy_spec,
    compare_accuracy_specs,
    train_spec,
)
from fleetnas.controller.spaces import UnknownSpace, get_space

DEFAULT_ESTIMATORS = ("naswot", "synflow")


@click.command()
@space_options(required=True)
@click.option("--data", required=True, metavar="DATA",
              help="Training data of the reference: digits, mnist5k, synthetic, a .npz file or an "
              "image folder.")
@click.option("--n", "n", default=50, show_default=True, type=click.IntRange(min=2),
              help="Random archs of the space to compare on.")
@click.option("--estimator", "estimators", multiple=True, metavar="SPEC",
              help="An --accuracy spec to rank (repeatable) [default: naswot, synflow].")
@click.option("--epochs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Epochs of the reference short training.")
@click.option("--max-train-samples", type=click.IntRange(min=1),
              help="Cap the reference's training split [default: all].")
@click.option("--max-val-samples", type=click.IntRange(min=1),
              help="Cap the reference's validation split [default: all].")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the sampled archs and of the reference training.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@quiet_option
@click.pass_context
def proxies(ctx: click.Context, space_flags: SpaceFlags, data: str, n: int,
            estimators: tuple[str, ...], epochs: int, max_train_samples: int | None,
            max_val_samples: int | None, seed: int, as_json: bool, quiet: bool) -> None:
    """Kendall tau of each proxy against short-trained accuracy on your data.

    Trains N sampled archs briefly (the reference: what a proxy should rank
    like), scores them with each estimator, and prints each one's Kendall
    tau-b and seconds per arch. Short training costs minutes per arch on a
    CPU: start with a small --n and --max-train-samples.

    \b
    Example:
        fleetnas proxies --space nb201 --data digits --n 50
        fleetnas proxies --space nb201 --data digits --n 10 --epochs 2 \\
            --estimator naswot --estimator supernet:digits,epochs=10
    """
    specs = list(estimators or DEFAULT_ESTIMATORS)
    reference_spec = train_spec(data, epochs=epochs, seed=seed, max_train_samples=max_train_samples,
                                max_val_samples=max_val_samples)
    try:
        space = get_space(space_flags.required_name, space_flags.config())
        for spec in (*specs, reference_spec):
            check_accuracy_spec(spec)
    except (UnknownSpace, ValueError, DriverError) as exc:
        raise click.UsageError(str(exc)) from exc
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    with search_errors(), progress(quiet) as sink:
        def on_progress(task: str, done: int, total: int | None, detail: str = "") -> None:
            if sink is not None:
                sink(ProgressEvent(task, done, total, detail=detail))

        compared = compare_accuracy_specs(space, archs, specs, reference_spec,
                                          workdir=db_path_of(ctx).resolve().parent,
                                          progress=on_progress)
    comparison, notes = compared.comparison, compared.notes
    if as_json:
        click.echo(json.dumps({
            "reference": {"spec": reference_spec, "scores": list(comparison.reference),
                          "seconds_per_arch": comparison.reference_seconds_per_arch},
            "archs": list(comparison.encodings),
            "estimators": [{"spec": r.name, "measures": accuracy_label(r.name), "tau": r.tau,
                            "seconds_per_arch": r.seconds_per_arch, "scores": list(r.scores)}
                           for r in comparison.rankings],
        }, indent=2))
        return
    console = output_console()
    for line in notes:
        console.print(escape(line), highlight=False)
    low, high = min(comparison.reference), max(comparison.reference)
    console.print(escape(f"reference: {reference_spec} on {n} archs of {space.identity()}: "
                         f"accuracy {low:.3f}–{high:.3f}, "
                         f"{comparison.reference_seconds_per_arch:.1f} s/arch"), highlight=False)
    table = Table(title="Kendall tau against the reference's accuracy")
    for column in ("estimator", "measures", "Kendall tau", "s/arch"):
        table.add_column(column, justify="left" if column in ("estimator", "measures") else "right")
    for r in comparison.rankings:
        tau = "undefined (ties)" if r.tau is None else f"{r.tau:+.3f}"
        table.add_row(escape(r.name), escape(accuracy_label(r.name)), tau,
                      f"{r.seconds_per_arch:.2f}")
    console.print(table)
