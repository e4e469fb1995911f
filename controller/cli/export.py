"""``fleetnas export ID --rank K``: write a front member of a stored search as ONNX + its arch string.

The rank is the row's position in the search's Pareto front, as ``fleetnas
search show ID`` prints it (1 = best by the first objective). The ONNX file
is the same bytes the search measured (exports are deterministic); the
sidecar ``.json`` holds the arch string, the space, the values and their
provenance, and the ``.txt`` the arch string alone.

``--format torch`` writes a trainable PyTorch network instead: the
``state_dict`` of the very module the ONNX was exported from (same seeded
weights) as ``.pt``, and in the sidecar a ``builder`` (the space, its
config, the arch, the module's class) so that
``get_space(space, space_config).build(space.decode(arch)).load_state_dict(torch.load(pt))``
rebuilds it. A member of a search
with precision genes is written as its fp32 network (what the search
exported before converting), with ``precision`` (target -> precision) in the
sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._options import existing_db_path
from fleetnas.controller.cli._results import search_errors
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchStore, load_search
from fleetnas.controller.report import ResultRow, front_rows
from fleetnas.controller.spaces import PrecisionSpace

FORMATS = ("onnx", "torch")


def _write_torch(space: Any, arch: Any, out: Path) -> dict[str, Any]:
    """The arch's exported module's ``state_dict`` to ``out``; the sidecar's ``builder``."""
    import torch

    from fleetnas.controller.export import arch_module

    module, _ = arch_module(space, arch)
    torch.save(module.state_dict(), out)
    kind = type(module)
    return {"function": "fleetnas.controller.spaces.get_space", "space": space.name,
            "space_config": space.config(), "module_class": f"{kind.__module__}.{kind.__qualname__}",
            "state_dict": out.name, "torch_version": torch.__version__,
            "load": "space = get_space(space, space_config); net = space.build(space.decode(arch)); "
                    "net.load_state_dict(torch.load(state_dict))"}  # fmt: skip


def write_export(
    db: CostDB, search_id: int, rank: int, out: Path, *, cache_dir: Path | None = None,
    fmt: str = "onnx",
) -> tuple[ResultRow, str]:
    """Write rank ``rank`` of the search's front to ``out`` (+ ``.json``, ``.txt``).

    ``fmt`` ``onnx`` writes the ONNX bytes the search measured, ``torch`` the
    module's state_dict (see the module docstring). Returns the front row and
    the ONNX model's sha256 (the measured model's identity in both formats).
    Raises click errors for a search without that rank.
    """
    from fleetnas.controller.export import export_arch

    stored = load_search(SearchStore(db), search_id)
    config, engine = stored.config, stored.engine
    rows = front_rows(engine)
    if not rows:
        raise click.ClickException(f"search {search_id} has no complete candidate yet")
    if rank > len(rows):
        raise click.ClickException(
            f"search {search_id} has {len(rows)} networks on its front; pick --rank 1..{len(rows)}"
        )
    row = rows[rank - 1]
    space = engine.space
    arch = space.decode(row.encoding)
    precision: dict[str, str] = {}
    if isinstance(space, PrecisionSpace):  # the fp32 network: the one every target got first
        precision = space.genes_of(arch)
        space, arch = space.base, arch.arch
    exported = export_arch(space, arch, cache_dir=cache_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    builder = None
    if fmt == "torch":
        builder = _write_torch(space, arch, out)
    else:
        out.write_bytes(exported.onnx_bytes)
    sidecar: dict[str, Any] = {
        "search_id": search_id, "rank": rank, "candidate_id": row.candidate_id,
        "arch": row.encoding, "space": config.space, "space_config": dict(config.space_config),
        "space_identity": space.identity(), "space_version": space.version,
        "format": fmt, "onnx": out.name if fmt == "onnx" else None, "sha256": exported.sha256, "input_name": exported.input_name,
        "input_shape": list(exported.input_shape),
        "values": dict(row.values), "sources": dict(row.sources), "source": row.source,
        "feasible": row.feasible, "measurements": dict(row.measurements),
        "params": space.count_params(arch), "flops": space.count_flops(arch),
    }  # fmt: skip
    if builder is not None:
        sidecar["builder"] = builder
    if precision:  # each target's precision gene: make those variants with `fleetnas quantize`
        sidecar["precision"] = precision
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".txt").write_text(row.encoding + "\n", encoding="utf-8")
    return row, exported.sha256


@click.command()
@click.argument("search_id", type=int, metavar="ID")
@click.option("--rank", default=1, show_default=True, type=click.IntRange(min=1),
              help="Row of the Pareto front (as `fleetnas search show ID` lists it).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write [default: search-ID-rank-K.onnx, or .pt with --format torch]; "
              "the sidecars go next to it (.json, .txt).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True,
              help="onnx: the model the search measured; torch: a trainable PyTorch network "
              "(state_dict .pt, rebuilt with space.build(arch).load_state_dict).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where exported ONNX files are cached [default: ~/.cache/fleetnas/onnx].")
@click.pass_context
def export(ctx: click.Context, search_id: int, rank: int, output: Path | None, fmt: str,
           cache_dir: Path | None) -> None:
    """Write the network at --rank of a search's Pareto front as ONNX, with its arch string.

    \b
    Example:
        fleetnas export 3 --rank 1 -o net.onnx      # net.onnx, net.json, net.txt
        fleetnas export 3 --rank 1 --format torch  # search-3-rank-1.pt + .json, .txt
    """
    console = output_console()
    with search_errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        suffix = ".pt" if fmt == "torch" else ".onnx"
        out = output or Path(f"search-{search_id}-rank-{rank}{suffix}")
        row, sha256 = write_export(db, search_id, rank, out, cache_dir=cache_dir, fmt=fmt)
    if row.model_sha256 and row.model_sha256 != sha256:
        console.print(f"[yellow]warning[/]: the search measured model {row.model_sha256[:12]}, "
                      f"this export is {sha256[:12]} (was the exporter upgraded?)")
    console.print(escape(f"wrote {out} (rank {rank}, candidate {row.candidate_id}, sha256 "
                         f"{sha256[:12]}) and its arch string in {out.with_suffix('.json')}, "
                         f"{out.with_suffix('.txt')}"), highlight=False)
    console.print(row.encoding, highlight=False, markup=False)
