"""Fusion-aware kernels on real optimised graphs, and a kernel LUT built on a real agent.

The nets are archs of a small mbv3 configuration (96 px, width 0.5, 10
classes), exported with the project's exporter and optimised by the real
onnxruntime: the fusions found are the runtime's own.
"""

from __future__ import annotations

import dataclasses
import platform
from collections import Counter
from pathlib import Path

import onnx
import pytest

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_arch
from fleetnas.controller.lut import CalibrationError
from fleetnas.controller.predict import (
    KERNEL_ARCH_PREFIX,
    NULL_KEY,
    KernelEntry,
    KernelExtractionError,
    KernelLut,
    KernelPredictor,
    MissingKernel,
    NetKernels,
    Protocol,
    build_kernel_lut,
    check_kernel_model,
    cover_archs,
    extract_kernels,
    kernel_model,
    null_model,
)
from fleetnas.controller.predict._kernels import graph_kernels, optimized_graph
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import get_space
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of

SPACE = get_space("mbv3", {"resolutions": [96], "width_mult": 0.5, "num_classes": 10})
ALL = agent_pb2.GRAPH_OPTIMIZATION_ALL
EXTENDED = agent_pb2.GRAPH_OPTIMIZATION_EXTENDED
X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    cache = tmp_path_factory.mktemp("onnx")
    archs = cover_archs(SPACE)[:3]
    return {SPACE.encode(a): export_arch(SPACE, a, cache_dir=cache).onnx_bytes for a in archs}


def _original_ops(model: bytes) -> Counter[str]:
    return Counter(n.op_type for n in onnx.load_from_string(model).graph.node)


def test_fused_nodes_are_found_and_every_convolution_is_in_a_kernel(
    nets: dict[str, bytes],
) -> None:
    for model in nets.values():
        original = _original_ops(model)
        for level in (EXTENDED, ALL):
            net = extract_kernels(model, level)
            fusions = Counter(k.fusion for k in net.kernels)
            # Activations fused into their convolution: the runtime runs them as one node.
            assert fusions["Conv+Relu"] > 0, fusions
            convs = sum(1 for k in net.kernels if k.op_type in ("Conv", "FusedConv"))
            assert convs == original["Conv"]
            assert len(net.kernels) < sum(original.values())
            if level == EXTENDED:
                assert any(k.op == "com.microsoft:FusedConv" for k in net.kernels)
            elif X86:
                # NCHWc: residual adds inside the convolution, layout changes as kernels.
                assert fusions["Conv+Add"] == original["Add"]
                assert any(k.op_type == "ReorderOutput" for k in net.kernels)


def test_a_nets_kernels_cover_all_its_executed_nodes(nets: dict[str, bytes]) -> None:
    for model in nets.values():
        optimized, profiled = optimized_graph(model, ALL)
        net = graph_kernels(optimized, profiled, ALL)
        assert list(net.nodes) == [n.name for n in optimized.graph.node]
        assert len(set(net.nodes)) == len(net.nodes) == len(net.kernels)
        assert set(net.nodes) == set(profiled)  # every executed node, no other
        assert sum(net.counts().values()) == len(net.kernels)


def test_keys_are_stable_and_do_not_depend_on_weights_or_names(nets: dict[str, bytes]) -> None:
    model = next(iter(nets.values()))
    # onnxruntime names the reorder nodes it adds differently in each session, and may
    # order independent nodes differently: a net's kernels are a multiset of keys.
    first, second = extract_kernels(model, ALL), extract_kernels(model, ALL)
    assert first.counts() == second.counts()
    # The same graph with other weights and other tensor names: the same kernels.
    proto = onnx.load_from_string(model)
    for tensor in proto.graph.initializer:
        array = onnx.numpy_helper.to_array(tensor)
        if array.dtype.kind == "f":
            tensor.CopyFrom(onnx.numpy_helper.from_array(array * 0.5 + 0.01, tensor.name))
    renamed = {t.name: f"w{i}" for i, t in enumerate(proto.graph.initializer)}
    for tensor in proto.graph.initializer:
        tensor.name = renamed[tensor.name]
    for node in proto.graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.name = node.name + "_other"
    other = extract_kernels(proto.SerializeToString(), ALL)
    assert other.counts() == first.counts()
    # Different archs share the kernels of the blocks they share.
    keys = [set(extract_kernels(m, ALL).counts()) for m in nets.values()]
    assert keys[0] & keys[1] and keys[0] != keys[1]


def test_a_key_names_op_attributes_and_shapes() -> None:
    net = extract_kernels(onnx_models.conv_net(8, 16, 2), EXTENDED)
    key = net.kernels[0].key
    assert key.startswith(("com.microsoft:FusedConv@1|", "ai.onnx:Conv@"))
    assert "kernel_shape=3x3" in key and "in=1x8x16x16,c:8x8x3x3" in key
    assert key.endswith("out=1x8x16x16")


def test_standalone_models_run_as_the_one_node_and_are_deterministic(
    nets: dict[str, bytes],
) -> None:
    net = extract_kernels(next(iter(nets.values())), ALL)
    for kernel in net.distinct().values():
        model = kernel_model(kernel)
        assert model == kernel_model(kernel)  # bytes depend on the key alone
        assert check_kernel_model(kernel, model, ALL) is None, kernel.key
    # A standard convolution taken at level extended is rewritten at level all on x86
    # (NCHWc with reorders around it): the check says so rather than timing the wrong thing.
    standard = next(k for k in extract_kernels(next(iter(nets.values())), EXTENDED).kernels
                    if k.op == "ai.onnx:Conv")
    instead = check_kernel_model(standard, kernel_model(standard), ALL)
    if X86:
        assert instead is not None and "Reorder" in instead
    assert check_kernel_model(standard, kernel_model(standard), EXTENDED) is None


def test_models_that_cannot_be_extracted_get_a_precise_error() -> None:
    with pytest.raises(KernelExtractionError, match="dynamic shape"):
        extract_kernels(onnx_models.dynamic_batch_mlp(8))
    with pytest.raises(KernelExtractionError, match="cannot run"):
        extract_kernels(onnx_models.random_bytes(100))
    with pytest.raises(ValueError, match="optimisation level"):
        extract_kernels(onnx_models.mlp(8, 1), 99)


def test_net_kernels_round_trip_through_json(nets: dict[str, bytes]) -> None:
    net = extract_kernels(next(iter(nets.values())), ALL)
    assert NetKernels.from_dict(net.to_dict()) == net


def _lut(entries: dict[str, float]) -> KernelLut:
    return KernelLut("dev", None, "all", "1", "x", {
        k: KernelEntry(v, 0.01, "0" * 64) for k, v in entries.items()})


def test_the_prediction_is_the_sum_of_kernels_less_the_per_run_cost(
    nets: dict[str, bytes],
) -> None:
    net = extract_kernels(next(iter(nets.values())), ALL)
    keys = list(net.distinct())
    lut = _lut({NULL_KEY: 0.01, **{k: 0.05 + 0.01 * i for i, k in enumerate(keys)}})
    expected = sum(lut.entries[k.key].latency_ms - 0.01 for k in net.kernels)
    assert lut.raw_sum(net) == pytest.approx(expected)
    assert lut.predict(net) == lut.raw_sum(net)  # uncalibrated
    # Nets of 10, 20, ... of those kernels, measured at exactly 2 x sum + 1 ms: a, b come back.
    parts = [dataclasses.replace(net, kernels=net.kernels[:k], nodes=net.nodes[:k])
             for k in range(10, 60, 10)]
    calibrated = lut.calibrated(parts, [2 * lut.raw_sum(p) + 1.0 for p in parts])
    assert calibrated.calibration is not None
    assert (calibrated.calibration.a, calibrated.calibration.b) == pytest.approx((2.0, 1.0))
    assert calibrated.predict(net) == pytest.approx(2 * expected + 1.0)
    assert KernelLut.from_dict(calibrated.to_dict()) == calibrated
    missing = _lut({NULL_KEY: 0.01, **{k: 0.05 for k in keys[1:]}})
    assert missing.missing(net) == [keys[0]]
    with pytest.raises(MissingKernel, match="build the LUT with the archs"):
        missing.raw_sum(net)
    with pytest.raises(CalibrationError):
        lut.calibrated([net] * 2, [1.0, 1.0])


# -- against a real agent -------------------------------------------------------------------


def test_a_kernel_lut_is_built_measured_once_and_predicts(agents: AgentPool,
                                                          tmp_path: Path) -> None:
    (agent,) = agents.start(1)
    archs = cover_archs(SPACE)[:1]
    cache = tmp_path / "onnx"
    protocol = Protocol(rounds=2, max_rounds=2, keep=2, tolerance=0.5, warmup_runs=1,
                        min_runs=5, min_duration_s=0.0, max_duration_s=0.2)
    request = agent_pb2.BenchmarkSettings(intra_op_threads=1)
    phases: set[str] = set()
    with CostDB(tmp_path / "cost.db") as db, Scheduler(fleet_of([agent]), db) as scheduler:
        build = build_kernel_lut(SPACE, agent.name, request, db=db, scheduler=scheduler,
                                 archs=archs, protocol=protocol, cache_dir=cache,
                                 on_progress=lambda phase, d, t: phases.add(phase))
        assert phases == {"extract", "models", "measure"}
        assert build.failed == {} and build.rewritten == {}
        assert set(build.lut.entries) >= {NULL_KEY}
        assert len(build.lut.entries) == build.kernels + 1
        assert build.protocol.jobs == 2 * (build.kernels + 1)
        for key, entry in build.lut.entries.items():
            model = db.get_model(entry.model_sha256)
            assert model is not None and model.arch == KERNEL_ARCH_PREFIX + key
            assert db.count_measurements(model_sha256=entry.model_sha256) == 2
        predictor = KernelPredictor(SPACE, build.lut, cache_dir=cache)
        for arch in archs:
            assert predictor.raw_sum(arch) > 0
            assert build.lut.missing(predictor.kernels(arch)) == []
        # Built again: every round is in the DB, nothing is measured.
        again = build_kernel_lut(SPACE, agent.name, request, db=db, scheduler=scheduler,
                                 archs=archs, protocol=protocol, cache_dir=cache)
        assert again.protocol.jobs == 0 and again.lut.entries == build.lut.entries
    assert null_model() == null_model()
