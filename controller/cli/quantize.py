"""``fleetnas quantize``: the int8 / fp16 variants of an fp32 ONNX model, written and measured.

Each variant is made by :func:`~fleetnas.controller.compress.make_variant`
(onnxruntime's quantizer, the fp16 converter) and written next to the model
(or to ``--out-dir``) as ``STEM.PRECISION.onnx``; the table shows each file's
size against the original's and the precision detected in the written graph.
With ``--measure`` or a target, the original and its variants are measured
and compared as ``fleetnas compare`` does (speed-up against the fp32 model).
int8 calibration data come from ``--calibration``; without it, random data,
with the library's warning shown as a CLI warning.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.atomic_files import write_bytes_atomic
from fleetnas.controller.cli._comparison import save_comparison_plot
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._measuring import plan_jobs, run_options
from fleetnas.controller.cli._options import settings_request
from fleetnas.controller.cli._targets import TargetFlags, target_options
from fleetnas.controller.cli.compare import compare_models, report_failures, show_comparison
from fleetnas.controller.cli.fleet import fleet_option

DEFAULT_PRECISIONS = "int8,int8-dynamic,fp16"


def _variants(model: Path, precisions: str, calibration: str | None,
              out_dir: Path) -> list[dict[str, Any]]:
    """Make and write every variant; one dict per written file. One-line click errors for a
    model that is not fp32 ONNX, bad calibration data or an unknown precision."""
    from fleetnas.controller.compress import (
        CompressError,
        Precision,
        RandomCalibrationWarning,
        UnknownPrecision,
        calibration_for,
        detect_precision,
        make_variant,
        parse_precisions,
    )

    try:
        wanted = [p for p in parse_precisions(precisions) if p is not Precision.FP32]
    except UnknownPrecision as exc:
        raise click.BadParameter(str(exc), param_hint="--precision") from exc
    data = model.read_bytes()
    written = []
    try:
        found = detect_precision(data)
        if found.precision is not Precision.FP32:
            raise click.ClickException(
                f"{model}: it is already {found.precision.value} ({found.evidence.summary()}); "
                "quantize takes a float32 model: start from its original")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RandomCalibrationWarning)
            cal = (calibration_for(data, calibration) if Precision.INT8 in wanted else None)
        for w in caught:
            click.echo(f"warning: {w.message}", err=True)
        for precision in wanted:
            variant = make_variant(data, precision, calibration=cal)
            path = write_bytes_atomic(out_dir / f"{model.stem}.{precision.value}.onnx",
                                      variant.onnx_bytes)
            written.append({
                "precision": precision.value, "file": str(path), "sha256": variant.sha256,
                "size_bytes": len(variant.onnx_bytes),
                "size_ratio": len(variant.onnx_bytes) / len(data),
                "detected": detect_precision(variant.onnx_bytes).precision.value,
                "calibration": variant.calibration_source,
            })
    except CompressError as exc:
        raise click.ClickException(f"{model}: {exc}") from exc
    return written


def _size_table(model: Path, written: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Variants of {escape(model.name)} ({model.stat().st_size:,} bytes)")
    for name in ("precision", "file", "bytes", "vs fp32", "detected", "sha256"):
        table.add_column(name, justify="right" if name in ("bytes", "vs fp32") else "left",
                         overflow="fold")
    for v in written:
        table.add_row(v["precision"], escape(v["file"]), f"{v['size_bytes']:,}",
                      f"{v['size_ratio']:.2f}x", v["detected"], v["sha256"][:12])
    return table


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--calibration", metavar="DATA",
              help="int8 calibration data: an .npz (one array per input, or a dataset's "
              "x_train/y_train) or a dataset spec. Default: random data, with a warning.")
@click.option("--precision", "precisions", default=DEFAULT_PRECISIONS, show_default=True,
              metavar="LIST", help="Variants to make, comma-separated: int8, int8-dynamic, "
              "fp16 (fp32 is the model itself).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the variants (created). Default: the model's folder.")
@click.option("--measure", "measure_them", is_flag=True,
              help="Measure the model and its variants and print the compare table (implied "
              "by --device/--class/--local; alone, measures on this machine).")
@target_options("Measure on")
@settings_request()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="With measuring: write a PNG grouped bar chart of the latencies to FILE.")
@run_options
@fleet_option
@click.pass_context
def quantize(
    ctx: click.Context,
    model: Path,
    calibration: str | None,
    precisions: str,
    out_dir: Path | None,
    measure_them: bool,
    targets: TargetFlags,
    as_json: bool,
    plot: Path | None,
    max_retries: int,
    device_wait_s: float,
    fleet_file: Path | None,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Write the int8 / fp16 variants of an fp32 ONNX MODEL; optionally measure them.

    Variants are written as STEM.PRECISION.onnx (m.int8.onnx, m.int8-dynamic.onnx,
    m.fp16.onnx) next to MODEL or in --out-dir, and listed with their sizes
    and the precision detected in each written graph. With --measure or a
    target, MODEL and its variants are measured and compared (speed-up
    against MODEL) as `fleetnas compare` does.

    \b
    Example:
        fleetnas quantize model.onnx --calibration data.npz
        fleetnas quantize model.onnx --precision int8,fp16 --out-dir variants
        fleetnas quantize model.onnx --calibration data.npz --device pi4 --device x86
        fleetnas quantize model.onnx --measure --threads 1 --plot variants.png
    """
    measuring = measure_them or targets.named or targets.local
    if plot is not None and not measuring:
        raise click.UsageError("--plot needs --measure (or a --device/--class/--local target)")
    if measuring:  # a target that cannot be used fails before any file is written
        plan_jobs([model], targets, request, fleet_file)
    written = _variants(model, precisions, calibration, out_dir or model.parent)
    if as_json and not measuring:
        click.echo(json.dumps({"variants": written}, indent=2))
    elif not as_json:
        output_console().print(_size_table(model, written))
    if not measuring:
        return
    files = [model, *(Path(v["file"]) for v in written)]
    result, ok = compare_models(ctx, files, targets, request, fleet_file=fleet_file,
                                quiet=as_json, max_retries=max_retries,
                                device_wait_s=device_wait_s)
    if as_json:
        click.echo(json.dumps({"variants": written, "comparison": result.to_dict()}, indent=2))
        if plot is not None:
            click.echo(f"wrote {save_comparison_plot(result, plot)}", err=True)
    else:
        show_comparison(result, as_json=False, plot=plot, title=f"{model.name} and its variants")
    if not ok:
        report_failures(ctx, result)
