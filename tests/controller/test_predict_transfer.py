"""Few-shot transfer to a new device: the math on synthetic devices, then a real run.

Synthetic devices are latencies that are exact non-negative combinations of
arch descriptors (time per MAC, per element, per operator): the model's own
assumption, so a planted device embedding must come back. The integration
test measures archs of a tiny NAS-Bench-201 space on a real loopback agent (the
source) and transfers to a second agent with other settings (the new device).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_arch
from fleetnas.controller.lut import kendall_tau_b
from fleetnas.controller.predict import (
    FEATURES,
    Protocol,
    TransferError,
    descriptor,
    fit_source,
    fit_transfer,
    measured_archs,
    nnls,
    reference_archs,
    transfer,
)
from fleetnas.controller.scheduler import Job, Scheduler
from fleetnas.controller.spaces import get_space
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings


def test_nnls_matches_scipy_on_random_problems() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        m, n = rng.integers(3, 30), rng.integers(1, 12)
        a, b = rng.standard_normal((m, n)), rng.standard_normal(m)
        ours, ref = nnls(a, b), scipy_nnls(a, b)[0]
        assert (ours >= 0).all()
        # Same optimum (the minimiser may differ only where the problem is degenerate).
        assert np.linalg.norm(a @ ours - b) == pytest.approx(np.linalg.norm(a @ ref - b),
                                                              rel=1e-6, abs=1e-9)


def _synthetic(n_archs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Arch descriptors (n, F) and 5 source devices' costs per feature + constant (5, F+1)."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(0.5, 5.0, size=(n_archs, len(FEATURES)))
    thetas = rng.uniform(0.0, 1.0, size=(5, len(FEATURES) + 1)) * (rng.random((5, 1)) + 0.2)
    return features, thetas


def _latencies(features: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return np.hstack([features, np.ones((len(features), 1))]) @ theta


def test_a_source_model_recovers_planted_costs() -> None:
    features, thetas = _synthetic(120, seed=1)
    latency = _latencies(features, thetas[0])
    theta = fit_source(features, latency)
    assert (theta >= 0).all()
    predicted = _latencies(features, theta)
    assert np.max(np.abs(predicted / latency - 1.0)) < 1e-6


def test_the_transfer_recovers_a_planted_device_embedding() -> None:
    features, thetas = _synthetic(400, seed=2)
    sources = np.column_stack([_latencies(features, t) for t in thetas[:4]])
    planted = np.array([0.6, 0.0, 0.4, 0.0])
    rng = np.random.default_rng(3)
    target = sources @ planted * (1.0 + 0.002 * rng.standard_normal(len(features)))
    train, test = slice(0, 20), slice(20, None)
    fit = fit_transfer(sources[train], features[train], target[train])
    assert np.abs(fit.embedding - planted).max() < 0.05, fit.embedding
    predicted = fit.predict(sources[test], features[test])
    errors = np.abs(predicted / target[test] - 1.0)
    assert errors.max() < 0.02
    assert fit.loo_rmspe < 2.0


def test_few_measurements_still_rank_a_device_between_known_ones() -> None:
    features, thetas = _synthetic(300, seed=4)
    sources = np.column_stack([_latencies(features, t) for t in thetas[:4]])
    # A device none of the sources is: 0.7 of one plus costs of its own on two features.
    own = np.zeros(len(FEATURES) + 1)
    own[[0, 5]] = 0.3
    target = 0.7 * sources[:, 1] + _latencies(features, own)

    def tau(predicted: np.ndarray) -> float:
        value = kendall_tau_b([float(v) for v in predicted], [float(v) for v in target[50:]])
        assert value is not None
        return value

    taus = {n: tau(fit_transfer(sources[:n], features[:n], target[:n])
                   .predict(sources[50:], features[50:])) for n in (5, 10, 20, 50)}
    # With 5 measurements: as good as the best known device picked in hindsight; with more,
    # the device's own costs are learnt too.
    best_single = max(tau(sources[50:, j]) for j in range(sources.shape[1]))
    assert taus[5] >= best_single - 0.05, (taus, best_single)
    assert taus[20] > 0.95 and taus[50] > 0.98, taus


def test_transfer_needs_two_measurements() -> None:
    features, thetas = _synthetic(10, seed=5)
    sources = np.column_stack([_latencies(features, t) for t in thetas[:2]])
    with pytest.raises(TransferError, match="at least 2"):
        fit_transfer(sources[:1], features[:1], sources[:1, 0])


def test_descriptor_counts_the_work_of_an_exported_net(tmp_path: Path) -> None:
    space = get_space("mbv3", {"resolutions": [96], "width_mult": 0.5, "num_classes": 10})
    small, large = reference_archs(space, 2, seed=0)
    d = {arch: descriptor(export_arch(space, arch, cache_dir=tmp_path).onnx_bytes)
         for arch in (small, large)}
    index = {name: i for i, name in enumerate(FEATURES)}
    for arch, values in d.items():
        total = (values[index["dense_conv_mmacs"]] + values[index["pointwise_conv_mmacs"]]
                 + values[index["depthwise_conv_mmacs"]] + values[index["matmul_mmacs"]])
        # The space counts the same multiply-accumulates (convolutions and the classifier).
        assert total * 1e6 == pytest.approx(space.count_flops(arch), rel=1e-9)
        assert values[index["conv_nodes"]] >= len(space.blocks(arch))
        assert values[index["elementwise_melems"]] > 0


# -- a real transfer --------------------------------------------------------------------------

SPACE = get_space("nb201", {"channels": 4, "cells_per_stage": 1})


def test_transfer_end_to_end_on_loopback(agents: AgentPool, tmp_path: Path) -> None:
    source, target = agents.start(2)
    fleet = fleet_of([source, target])
    cache = tmp_path / "onnx"
    archs = reference_archs(SPACE, 14, seed=0)
    protocol = Protocol(rounds=1, max_rounds=1, keep=1, tolerance=0.5, warmup_runs=1,
                        min_runs=5, min_duration_s=0.0, max_duration_s=0.3)
    with CostDB(tmp_path / "cost.db") as db, Scheduler(fleet, db) as scheduler:
        jobs = []
        for arch in archs:
            exported = export_arch(SPACE, arch, cache_dir=cache)
            db.record_model(exported.sha256, len(exported.onnx_bytes), space=SPACE.identity(),
                            arch=SPACE.encode(arch))
            jobs.append(Job.on_device(exported.onnx_bytes, source.name, tiny_settings()))
        assert all(o.ok for o in scheduler.run(jobs))
        assert len(measured_archs(db, SPACE)[next(iter(measured_archs(db, SPACE)))]) == 14
        phases: set[str] = set()
        request = agent_pb2.BenchmarkSettings(
            graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_DISABLE)
        result = transfer(db, SPACE, target.name, 6, scheduler=scheduler, request=request,
                          protocol=protocol, cache_dir=cache, min_source_archs=14,
                          on_progress=lambda phase, d, t: phases.add(phase))
        assert phases == {"describe", "measure", "fit"}
        assert [s.device for s in result.sources] == [source.name]  # never the new device
        assert set(result.measured) == {SPACE.encode(a) for a in archs[:6]}
        # The new device's measurements are in the DB, under its own name.
        assert db.count_measurements(device=target.name) == 6
        predictions = result.predictor.predict_many(archs[6:])
        assert all(math.isfinite(p) and p > 0 for p in predictions)
        assert result.nearest.startswith(source.name)
        # Run again: the protocol's rounds are reused, nothing is measured.
        again = transfer(db, SPACE, target.name, 6, scheduler=scheduler, request=request,
                         protocol=protocol, cache_dir=cache, min_source_archs=14)
        assert db.count_measurements(device=target.name) == 6
        assert again.measured == result.measured
        with pytest.raises(TransferError, match="measure archs on at least one other device"):
            transfer(db, SPACE, target.name, 6, scheduler=scheduler, protocol=protocol,
                     cache_dir=cache, min_source_archs=1000)
        with pytest.raises(TransferError, match="at least 2"):
            transfer(db, SPACE, target.name, 1, scheduler=scheduler)


def _result(sha: str, samples: list[float], started_at: float) -> agent_pb2.BenchmarkResult:
    from fleetnas.agent.settings import resolve_settings
    from fleetnas.agent.stats import latency_stats

    settings = resolve_settings(agent_pb2.BenchmarkSettings(), max_timeout_s=60.0,
                                memory_cap_bytes=1 << 30,
                                available_providers=["CPUExecutionProvider"])
    return agent_pb2.BenchmarkResult(model_sha256=sha, settings=settings, samples_ms=samples,
                                     stats=latency_stats(samples), started_at=started_at)


def test_measured_archs_keeps_the_spaces_archs_and_their_lowest_measurements(
    tmp_path: Path,
) -> None:
    space = get_space("nb201")  # default-configured: a LUT's block models carry its name
    arch = space.encode(reference_archs(space, 1)[0])
    with CostDB(tmp_path / "cost.db") as db:
        db.record_model("a" * 64, 1, space=space.identity(), arch=arch)
        db.record_model("b" * 64, 1, space=space.identity(), arch="block:nb201.op|op=conv3")
        for i, ms in enumerate([12.0, 40.0, 10.0, 11.0]):
            db.record_measurement("dev", _result("a" * 64, [ms], 100.0 + i))
        db.record_measurement("dev", _result("b" * 64, [1.0], 200.0))
        table = measured_archs(db, space)
    ((key, archs),) = table.items()
    assert key[0] == "dev"
    # The mean of the three lowest: a slow outlier (interference) does not count.
    assert archs == {arch: pytest.approx(11.0)}


def test_no_prediction_falls_below_half_the_fastest_measured_arch(tmp_path: Path) -> None:
    """A fit that extrapolates below zero (here: a large negative constant) is floored: a
    search must never see a latency of zero or less."""
    from fleetnas.controller.predict import Descriptors, TransferFit, TransferPredictor
    from fleetnas.controller.predict._transfer import prediction_floor

    measured = {"a": 2.0, "b": 0.8, "c": 3.0}
    assert prediction_floor(measured) == pytest.approx(0.4) and prediction_floor({}) == 0.0
    coef = np.zeros(len(FEATURES) + 1)
    coef[-1] = -5.0  # no sources, every feature weight 0, constant -5 ms
    predictor = TransferPredictor(SPACE, [], TransferFit(coef, 0, 0.0, 0.0, math.nan),
                                  Descriptors(SPACE, tmp_path), prediction_floor(measured))
    archs = reference_archs(SPACE, 3, seed=1)
    assert predictor.predict_many(archs) == [pytest.approx(0.4)] * 3
    no_data = TransferPredictor(SPACE, [], TransferFit(coef, 0, 0.0, 0.0, math.nan),
                                Descriptors(SPACE, tmp_path))
    assert no_data.predict(archs[0]) == 0.0  # the fit's -5 ms: never below zero, even so
