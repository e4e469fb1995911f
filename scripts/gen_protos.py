"""Regenerate (or, with --check, verify) the Python code generated from protos/.

The generated files are committed so that a plain ``pip install`` needs no
protoc. ``--check`` regenerates into a temporary folder and fails when any
committed file differs: run it in CI so stale generated code cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency only

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise SystemExit("no .proto files under protos/")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [p for p in out_dir.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        generated = _generate(tmp_dir)
        stale: list[str] = []
        for new in generated:
            rel = new.relative_to(tmp_dir)
            committed = PROTO_ROOT / rel
            if args.check:
                if not committed.exists() or not filecmp.cmp(new, committed, shallow=False):
                    stale.append(str(rel))
            else:
                committed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(new, committed)
        if args.check:
            if stale:
                print("stale generated code: " + ", ".join(stale), file=sys.stderr)
                print("run: python scripts/gen_protos.py", file=sys.stderr)
                return 1
            print(f"generated code is up to date ({len(generated)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
