"""ONNX export of archs and blocks: deterministic, valid, runs in onnxruntime like torch, cached."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fleetnas.controller.export import (
    INPUT_NAME,
    OPSET,
    ExportedModel,
    arch_module,
    block_module,
    default_cache_dir,
    export_arch,
    export_block,
)
from fleetnas.controller.spaces import (
    Block,
    MobileNetV3Space,
    NB201Space,
    SearchSpace,
    UnknownArch,
    UnknownBlock,
)

NB201 = NB201Space()
MBV3 = MobileNetV3Space(resolutions=(96, 128), width_mult=0.5, num_classes=10)


@pytest.fixture(params=["nb201", "mbv3"])
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return {"nb201": NB201, "mbv3": MBV3}[request.param]


def run_onnx(model: ExportedModel, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    return session.run(None, {INPUT_NAME: x})[0]


def check_valid(model: ExportedModel) -> onnx.ModelProto:
    proto = onnx.load_from_string(model.onnx_bytes)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    dims = tuple(d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim)
    assert dims == model.input_shape
    assert model.sha256 == hashlib.sha256(model.onnx_bytes).hexdigest()
    return proto


def test_arch_export_is_valid_and_matches_torch(space: SearchSpace, tmp_path: Path) -> None:
    rng = random.Random(0)
    for _ in range(2):
        arch = space.sample(rng)
        model = export_arch(space, arch, cache_dir=tmp_path)
        check_valid(model)
        assert model.encoding == space.encode(arch) and model.space == space.identity()
        assert model.input_shape == space.input_shape(arch) and model.input_name == "x"
        module, shape = arch_module(space, arch)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = run_onnx(model, x)
        scale = float(np.abs(expected).max()) + 1e-6
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


def test_export_is_byte_identical_and_independent_of_global_rng(
    space: SearchSpace, tmp_path: Path
) -> None:
    arch = space.sample(random.Random(1))
    torch.manual_seed(1)
    first = export_arch(space, arch, cache_dir=tmp_path / "a")
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = export_arch(space, arch, cache_dir=tmp_path / "b")
    assert torch.equal(torch.get_rng_state(), state)  # export leaves the caller's RNG alone
    assert not first.cached and not second.cached
    assert first.onnx_bytes == second.onnx_bytes and first.sha256 == second.sha256
    other = export_arch(space, space.mutate(arch, random.Random(0)), use_cache=False)
    assert other.sha256 != first.sha256


def test_second_export_is_a_cache_hit(tmp_path: Path) -> None:
    arch = NB201.sample(random.Random(2))
    first = export_arch(NB201, arch, cache_dir=tmp_path)
    assert not first.cached and first.path is not None and first.path.parent == tmp_path
    assert first.path.read_bytes() == first.onnx_bytes
    second = export_arch(NB201, arch, cache_dir=tmp_path)
    assert second.cached and second == first and second.path == first.path
    # the cache holds the model and its metadata only: no external data files
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".onnx"]
    uncached = export_arch(NB201, arch, cache_dir=tmp_path, use_cache=False)
    assert not uncached.cached and uncached == first


def test_cache_entries_are_keyed_by_space_identity(tmp_path: Path) -> None:
    other = NB201Space(num_classes=3)
    arch = NB201.sample(random.Random(3))
    a = export_arch(NB201, arch, cache_dir=tmp_path)
    b = export_arch(other, arch, cache_dir=tmp_path)
    assert not b.cached and a.encoding == b.encoding and a.sha256 != b.sha256
    assert b.space == 'nb201{"num_classes":3}'
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_a_damaged_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    block = NB201.all_blocks()[0]
    first = export_block(NB201, block, cache_dir=tmp_path)
    meta = first.path.with_suffix(".json")
    meta.write_text("{not json")
    again = export_block(NB201, block, cache_dir=tmp_path)
    assert not again.cached and again == first
    assert json.loads(meta.read_text())["input_shape"] == list(first.input_shape)
    first.path.write_bytes(b"")
    assert not export_block(NB201, block, cache_dir=tmp_path).cached


def test_every_nb201_block_exports_and_runs(tmp_path: Path) -> None:
    shas = set()
    for block in NB201.all_blocks():
        model = export_block(NB201, block, cache_dir=tmp_path)
        check_valid(model)
        assert model.encoding == block.key
        module, shape = block_module(NB201, block)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_onnx(model, x), expected, rtol=1e-4, atol=1e-4)
        shas.add(model.sha256)
    assert len(shas) == len(NB201.all_blocks())


def test_mbv3_blocks_export_deterministically(tmp_path: Path) -> None:
    blocks = random.Random(0).sample(MBV3.all_blocks(), 6)
    for block in blocks:
        a = export_block(MBV3, block, cache_dir=tmp_path / "a")
        b = export_block(MBV3, block, cache_dir=tmp_path / "b")
        assert a.onnx_bytes == b.onnx_bytes
        proto = check_valid(a)
        assert a.input_shape == block_module(MBV3, block)[1]
        assert proto.graph.node  # a real graph
        x = np.random.default_rng(2).standard_normal(a.input_shape).astype(np.float32)
        assert np.isfinite(run_onnx(a, x)).all()


def test_a_block_exports_the_same_bytes_from_any_configuration(tmp_path: Path) -> None:
    block = Block.of(
        "mbv3.mbconv", kernel=5, expand=4, c_in=24, c_out=24, stride=1, hw=24, se=False, act="relu"
    )
    a = export_block(MobileNetV3Space(), block, use_cache=False)
    b = export_block(MBV3, block, cache_dir=tmp_path)
    assert a.sha256 == b.sha256


def test_another_opset_is_another_cache_entry(tmp_path: Path) -> None:
    block = NB201.all_blocks()[0]
    a = export_block(NB201, block, cache_dir=tmp_path)
    b = export_block(NB201, block, cache_dir=tmp_path, opset=18)
    assert not b.cached and onnx.load_from_string(b.onnx_bytes).opset_import[0].version == 18
    assert export_block(NB201, block, cache_dir=tmp_path, opset=18).cached
    assert a.sha256 != b.sha256


def test_foreign_archs_and_blocks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownArch):
        export_arch(NB201, MBV3.sample(random.Random(0)), cache_dir=tmp_path)
    with pytest.raises(UnknownBlock):
        export_block(NB201, MBV3.all_blocks()[0], cache_dir=tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "fleetnas" / "onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "fleetnas" / "onnx"


def test_a_cache_hit_does_not_import_torch(tmp_path: Path) -> None:
    arch = NB201.decode("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|")
    first = export_arch(NB201, arch, cache_dir=tmp_path)
    code = (
        "import sys\n"
        "from fleetnas.controller.export import export_arch\n"
        "from fleetnas.controller.spaces import get_space\n"
        "s = get_space('nb201')\n"
        f"m = export_arch(s, s.decode({NB201.encode(arch)!r}), cache_dir={str(tmp_path)!r})\n"
        "assert m.cached, 'not a cache hit'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(m.sha256)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True
    )
    assert done.stdout.strip() == first.sha256


def test_register_records_each_origin_once_and_returns_a_path_ref(tmp_path: Path) -> None:
    from fleetnas.controller.costdb import CostDB
    from fleetnas.controller.export import register_arch, register_block

    configured = NB201Space(num_classes=3)
    arch = configured.sample(random.Random(4))
    block = configured.blocks(arch)[0]
    with CostDB(tmp_path / "cost.db") as db:
        ref = register_arch(db, configured, arch, cache_dir=tmp_path / "onnx")
        model = db.get_model(ref.sha256)
        assert model is not None and ref.path is not None and ref.data is None
        assert (model.space, model.arch) == (configured.identity(), configured.encode(arch))
        assert model.params == configured.count_params(arch) and model.flops is not None
        assert model.size_bytes == ref.size_bytes == ref.path.stat().st_size
        block_ref = register_block(db, configured, block, cache_dir=tmp_path / "onnx")
        block_model = db.get_model(block_ref.sha256)
        assert block_model is not None
        # a block's bytes depend on its key only: its origin is the space name
        assert (block_model.space, block_model.arch) == ("nb201", "block:" + block.key)
        assert block_model.params is None
        writes = db.db.conn.total_changes
        assert register_arch(db, configured, arch, cache_dir=tmp_path / "onnx") == ref
        assert register_block(db, configured, block, cache_dir=tmp_path / "onnx") == block_ref
        assert db.db.conn.total_changes == writes  # known already: read, not written
