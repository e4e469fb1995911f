"""The comparison of models across targets: one row per model, shown by ``compare`` and
``quantize``.

:func:`comparison` reads the outcomes of ``len(models) x len(targets)`` jobs
(model-major, as :func:`~._measuring.plan_jobs` makes them). A model's
latency on a target is its measurement's ``latency_ms`` (the number the cost
DB stores, cached or new); its speed-up is the first model's latency on that
target divided by its own (> 1: faster than the first), None when either is
missing. Warnings are the measurements' warnings and the jobs' failures,
each prefixed by its target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from fleetnas.controller.cli._measuring import job_tag
from fleetnas.controller.scheduler import JobOutcome


@dataclass(frozen=True)
class ComparedModel:
    """One row: a model's label (its stored name, else its file name) and, per target
    (in the comparison's order), its latency, speed-up and measurement uid (None: failed)."""

    label: str
    file: str
    sha256: str
    latency_ms: tuple[float | None, ...]
    speedup: tuple[float | None, ...]
    measurement_uids: tuple[str | None, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """Models x targets (see the module docstring)."""

    targets: tuple[str, ...]
    models: tuple[ComparedModel, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: per model, latency and speed-up by target label."""
        return {
            "targets": list(self.targets),
            "models": [
                {"model": m.label, "file": m.file, "sha256": m.sha256,
                 "latency_ms": dict(zip(self.targets, m.latency_ms, strict=True)),
                 "speedup": dict(zip(self.targets, m.speedup, strict=True)),
                 "measurement_uids": dict(zip(self.targets, m.measurement_uids, strict=True)),
                 "warnings": list(m.warnings)}
                for m in self.models
            ],
        }


def _warnings(outcomes: Sequence[JobOutcome]) -> tuple[str, ...]:
    found: list[str] = []
    for o in outcomes:
        target = job_tag(o.job).target
        if not o.ok:
            found.append(f"{target}: failed: {o.error_message}")
        elif o.measurement is not None:
            found += [f"{target}: {w}" for w in o.measurement.warnings]
    return tuple(found)


def comparison(outcomes: Sequence[JobOutcome], n_models: int,
               labels: Sequence[str] | None = None) -> Comparison:
    """The comparison of ``n_models`` models from their model-major outcomes; ``labels``
    (one per model) name the rows, else the file names do."""
    if n_models < 1 or len(outcomes) % n_models:
        raise ValueError(f"{len(outcomes)} outcomes are not {n_models} models x targets")
    per = len(outcomes) // n_models
    rows = [list(outcomes[i * per:(i + 1) * per]) for i in range(n_models)]
    targets = tuple(job_tag(o.job).target for o in rows[0])
    latencies = [tuple(o.measurement.latency_ms if o.ok and o.measurement else None
                       for o in row) for row in rows]
    base = latencies[0]
    models = []
    for i, row in enumerate(rows):
        speedup = tuple(b / v if b is not None and v else None
                        for b, v in zip(base, latencies[i], strict=True))
        models.append(ComparedModel(
            label=labels[i] if labels else job_tag(row[0].job).model,
            file=job_tag(row[0].job).model,
            sha256=row[0].job.model.sha256,
            latency_ms=latencies[i],
            speedup=speedup,
            measurement_uids=tuple(o.measurement.uid if o.ok and o.measurement else None
                                   for o in row),
            warnings=_warnings(row),
        ))
    return Comparison(targets, tuple(models))


def _short(warning: str) -> str:
    """``"pi4: noisy measurement: cv is ..."`` -> ``"pi4: noisy measurement"``."""
    target, _, rest = warning.partition(": ")
    return f"{target}: {rest.split(':')[0].split(';')[0]}"


def comparison_table(c: Comparison, title: str = "Comparison") -> Table:
    """The rich table: model, then per target its latency and speed-up, then warnings
    (each cut to its first clause; ``--json`` has them whole)."""
    table = Table(title=title)
    table.add_column("model", overflow="fold")
    for target in c.targets:
        table.add_column(f"{target} ms", justify="right")
        table.add_column(f"{target} speed-up", justify="right")
    table.add_column("warnings", overflow="fold")
    for m in c.models:
        cells = [escape(m.label)]
        for latency, speedup in zip(m.latency_ms, m.speedup, strict=True):
            cells.append("-" if latency is None else f"{latency:.4g}")
            cells.append("-" if speedup is None else f"{speedup:.2f}x")
        cells.append(escape("; ".join(dict.fromkeys(_short(w) for w in m.warnings))) or "-")
        table.add_row(*cells)
    return table


def save_comparison_plot(c: Comparison, path: str | Path) -> Path:
    """A PNG grouped bar chart at ``path``: one group per target, one bar per model
    (latency in ms; a failed job has no bar). Returns the path."""
    from fleetnas.controller.report._figure import new_figure, save_png

    fig = new_figure(max(5.0, 1.2 + 0.5 * len(c.targets) * len(c.models)), 4.0)
    ax = fig.subplots()
    width = 0.8 / len(c.models)
    for i, m in enumerate(c.models):
        xs = [j + (i - (len(c.models) - 1) / 2) * width for j in range(len(c.targets))]
        heights = [v if v is not None else 0.0 for v in m.latency_ms]
        bars = ax.bar(xs, heights, width, label=m.label)
        ax.bar_label(bars, labels=[f"{s:.2f}x" if s is not None else "" for s in m.speedup],
                     fontsize=7, padding=2)
    ax.set_xticks(range(len(c.targets)), list(c.targets))
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency per target (labels: speed-up vs the first model)", fontsize=9)
    ax.legend(fontsize=8)
    ax.margins(y=0.15)
    fig.tight_layout()
    return save_png(fig, path)
