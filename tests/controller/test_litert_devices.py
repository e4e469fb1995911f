"""A LiteRT device gets .tflite: LUTs and measured candidates work as for onnxruntime.

The format a device is sent follows the runtime that will run the request
(``Scheduler.model_format_for``): the request's ``runtime``, else the device's
Describe. The tests with a real local agent measure with ``runtime=litert``; they
need the agent worker's LiteRT backend (agent-runner's work): until it is on main,
they fail with the agent's error in the message, and nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import Target
from fleetnas.controller.driver._measure import MeasureRequest, SchedulerMeasurer
from fleetnas.controller.export import export_arch, export_block
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from fleetnas.controller.lut import LatencyPredictor, build_lut, measure_archs
from fleetnas.controller.scheduler import Scheduler, model_format_for
from fleetnas.controller.spaces import Block
from tests.controller.conftest import fleet_of, tiny_settings
from tests.controller.test_search_toyspace import ToySpace

pytestmark = pytest.mark.timeout(900)

ONNX, TFLITE = agent_pb2.MODEL_FORMAT_ONNX, agent_pb2.MODEL_FORMAT_TFLITE
WAITS = "waits for the agent worker's LiteRT backend (agent-runner)"


class TwoConvSpace(ToySpace):
    """Two 4-channel convs on 4x8x8, each of kernel 1 or 3: 4 distinct blocks, 4 archs."""

    name = "twoconv"

    def __init__(self) -> None:
        super().__init__(genes=2, choices=2)

    def input_shape(self, arch: Any) -> tuple[int, ...]:
        return (1, 4, 8, 8)

    @staticmethod
    def _conv(kernel: int) -> Any:
        import torch

        return torch.nn.Sequential(torch.nn.Conv2d(4, 4, kernel, padding=kernel // 2),
                                   torch.nn.ReLU())

    def build(self, arch: Any) -> Any:
        import torch

        return torch.nn.Sequential(*(self._conv(1 + 2 * v) for v in arch)).eval()

    def build_block(self, block: Block) -> tuple[Any, tuple[int, ...]]:
        return self._conv(1 + 2 * int(block.param("value"))).eval(), (1, 4, 8, 8)


SPACE = TwoConvSpace()


@dataclass
class LiteRTAgent:
    agent: LocalAgent
    cache_dir: Path


@pytest.fixture(scope="module")
def litert_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteRTAgent]:
    root = tmp_path_factory.mktemp("litert")
    (agent,) = start_local_agents(1, root / "agents", name_prefix="a")
    agent.name = "a0"
    try:
        yield LiteRTAgent(agent, root / "models")
    finally:
        stop_local_agents([agent], timeout_s=10)


def _runtimes(*names: str) -> agent_pb2.DeviceDescription:
    description = agent_pb2.DeviceDescription()
    formats = {"onnxruntime": ONNX, "litert": TFLITE}
    for name in names:
        description.runtimes.add(name=name, formats=[formats[name]], available=True)
    return description


def test_the_format_follows_the_runtime_that_will_run_the_request() -> None:
    plain = agent_pb2.BenchmarkSettings()
    litert = agent_pb2.BenchmarkSettings(runtime="litert")
    assert model_format_for(plain, None) == ONNX  # never described
    assert model_format_for(plain, agent_pb2.DeviceDescription()) == ONNX  # a v1 agent
    assert model_format_for(plain, _runtimes("onnxruntime", "litert")) == ONNX
    assert model_format_for(plain, _runtimes("litert")) == TFLITE  # a LiteRT-only device
    assert model_format_for(litert, _runtimes("onnxruntime", "litert")) == TFLITE
    assert model_format_for(litert, None) == TFLITE
    unavailable = _runtimes("onnxruntime", "litert")
    unavailable.runtimes[0].available = False
    assert model_format_for(plain, unavailable) == TFLITE


def test_a_lut_for_a_litert_device_is_built_from_tflite_blocks(
    litert_agent: LiteRTAgent, tmp_path: Path
) -> None:
    fleet = fleet_of([litert_agent.agent])
    settings = tiny_settings(runtime="litert")
    cache = litert_agent.cache_dir
    with CostDB(tmp_path / "cost.db") as db, Scheduler(fleet, db) as scheduler:
        report = build_lut(SPACE, "a0", settings, db=db, scheduler=scheduler, cache_dir=cache)
        # every block went out as .tflite (recorded before anything was measured)
        for block in SPACE.all_blocks():
            tflite = export_block(SPACE, block, cache_dir=cache, model_format=TFLITE)
            assert tflite.cached
            model = db.get_model(tflite.sha256)
            assert model is not None and model.arch == f"block:{block.key}"
            assert db.get_model(export_block(SPACE, block, cache_dir=cache).sha256) is None
        assert not report.failed, f"{WAITS}: {report.failed[0][1]}"
        assert report.complete and report.lut is not None
        assert report.lut.settings["runtime"] == "litert"
        predictor = LatencyPredictor.from_lut(db, SPACE, report.lut)
        archs = [(0, 0), (1, 1)]
        measured, failed = measure_archs(SPACE, archs, report.lut, db=db, scheduler=scheduler,
                                         cache_dir=cache)
        assert not failed, f"{WAITS}: {failed[0][1]}"
        for arch, m in zip(archs, measured, strict=True):
            assert m.model_sha256 == export_arch(SPACE, arch, cache_dir=cache,
                                                 model_format=TFLITE).sha256
            assert predictor.raw_sum(arch) > 0 and m.measured_ms > 0


def test_a_candidate_is_measured_as_tflite_on_litert_and_onnx_elsewhere(
    litert_agent: LiteRTAgent, tmp_path: Path
) -> None:
    fleet = fleet_of([litert_agent.agent])
    cache = litert_agent.cache_dir
    light = {"warmup_runs": 2, "min_runs": 5, "max_runs": 30, "min_duration_s": 0.0,
             "max_duration_s": 0.5}
    targets = [Target.device("a0", settings={**light, "runtime": "litert"}, label="lite"),
               Target.device("a0", settings=light, label="ort")]
    arch = (1, 0)
    with CostDB(tmp_path / "cost.db") as db, Scheduler(fleet, db) as scheduler:
        measurer = SchedulerMeasurer(scheduler, db, cache_dir=cache)
        (result,) = measurer.measure(SPACE, [MeasureRequest(1, arch, SPACE.encode(arch))], targets)
    onnx = export_arch(SPACE, arch, cache_dir=cache)
    tflite = export_arch(SPACE, arch, cache_dir=cache, model_format=TFLITE)
    assert result.model_sha256 == onnx.sha256  # the candidate's own model is its ONNX export
    assert result.results["ort"].ok, result.results["ort"].error
    lite = result.results["lite"]
    assert lite.ok, f"{WAITS}: {lite.error}"
    assert lite.measurement_uid is not None
    with CostDB(tmp_path / "cost.db") as db:
        stored = db.get_measurement(lite.measurement_uid)
        assert stored is not None and stored.model_sha256 == tflite.sha256
        assert stored.settings["runtime"] == "litert"
