"""Supernet accuracy against stand-alone short training: Kendall tau and seconds per candidate.

1. Train (or reuse, from ``--store``) one NAS-Bench-201 supernet on scikit-learn's
   digits with uniform single-path sampling (``--epochs``), timed.
2. Sample ``--n`` archs (seeded; all-``none`` cells and other duplicates skipped).
3. Score each with the supernet (inherit weights, recalibrate BN on
   ``--bn-batches`` training batches, top-1 on the validation split) and with
   :class:`~fleetnas.controller.accuracy.ShortTrainingEstimator` (each arch
   trained alone for ``--short-epochs`` epochs from scratch).
4. Print per arch both accuracies, then Kendall tau-b of the two rankings,
   seconds per candidate of each and the speed-up. Writes ``--json`` when given.

No assertions and no target: tau on 12 archs has a wide sampling spread
(its standard error is ~0.2 for independent ranks), so read it with the
spread over ``--seeds``. Timings depend on the machine's load; the load
average is printed at start and end.

    .venv/bin/python bench/bench_supernet.py [--n 12] [--channels 8] [--cells 5] \\
        [--epochs 30] [--short-epochs 5] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fleetnas.controller.accuracy import ShortTrainingEstimator, load_digits
from fleetnas.controller.accuracy.supernet import (
    EvalConfig,
    SupernetEstimator,
    SupernetProgress,
    TrainConfig,
    rank_correlation,
)
from fleetnas.controller.spaces import NB201Arch, NB201Space


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} CPUs"


def _archs(space: NB201Space, n: int, seed: int) -> list[NB201Arch]:
    rng = random.Random(seed)
    out: list[NB201Arch] = []
    while len(out) < n:
        arch = space.sample(rng)
        if arch not in out and any(op != "none" for op in arch.ops):
            out.append(arch)
    return out


def _progress(every: int) -> Any:
    losses: list[float] = []

    def report(p: SupernetProgress) -> None:
        losses.append(p.loss)
        if p.step == p.steps:
            mean = sum(losses) / len(losses)
            losses.clear()
            if p.epoch % every == 0:
                print(f"  epoch {p.epoch}/{p.epochs}  mean loss {mean:.3f}  {p.seconds:.0f} s", flush=True)

    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="archs to compare")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=5, help="cells per stage")
    parser.add_argument("--epochs", type=int, default=30, help="supernet epochs")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--short-epochs", type=int, default=5, help="stand-alone epochs per arch")
    parser.add_argument("--bn-batches", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="arch-sample seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--store", type=Path, default=None, help="supernet store (default: temp)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"start: {_load()}; torch threads {torch.get_num_threads()}")
    space = NB201Space(channels=args.channels, cells_per_stage=args.cells)
    digits = load_digits()
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, seed=0)
    evaluation = EvalConfig(bn_batches=args.bn_batches, batch_size=128)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp)
        t0 = time.monotonic()
        estimator = SupernetEstimator.from_store(
            root, space, digits, config, eval_config=evaluation, progress=_progress(5)
        )
        manifest = estimator.trained.manifest
        print(
            f"supernet {manifest.key}: {manifest.epochs} epochs, {manifest.train_seconds:.0f} s "
            f"training (this run {time.monotonic() - t0:.0f} s), "
            f"largest {manifest.accuracy['largest'] if manifest.accuracy else '?'}, "
            f"smallest {manifest.accuracy['smallest'] if manifest.accuracy else '?'}"
        )
        reference = ShortTrainingEstimator(digits, epochs=args.short_epochs, seed=0)
        results = []
        for seed in args.seeds:
            archs = _archs(space, args.n, seed)
            print(f"seed {seed}: {'supernet':>8} {'short':>6}  arch")
            result = rank_correlation(
                space, archs, estimator, reference,
                on_arch=lambda i, enc, a, b: print(f"  {i:2d}    {a:8.3f} {b:6.3f}  {enc}", flush=True),
            )  # fmt: skip
            tau = "undefined" if result.tau is None else f"{result.tau:+.3f}"
            speedup = result.reference_seconds_per_arch / result.seconds_per_arch
            print(
                f"seed {seed}: Kendall tau {tau}; seconds/candidate: supernet "
                f"{result.seconds_per_arch:.2f}, short training {result.reference_seconds_per_arch:.1f} "
                f"({speedup:.0f}x)"
            )
            results.append({"seed": seed, **result.__dict__})
    print(f"end: {_load()}")
    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "manifest": manifest.to_dict(),
                   "results": results}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2, default=list) + "\n")


if __name__ == "__main__":
    main()
