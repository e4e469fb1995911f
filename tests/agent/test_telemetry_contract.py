"""The TelemetrySource contract, checked the same way against every implementation.

Each source is built twice: on an input where it works (a fake A10 through a
pynvml-shaped stand-in, a fake Jetson Nano tree, a fake Intel RAPL tree) and
on one where it cannot (no driver, not a Jetson, no RAPL).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetnas.agent.telemetry import JetsonSource, NvmlSource, RaplSource, TelemetrySource
from tests.agent.fake_root import write_tree
from tests.agent.test_telemetry_jetson import nano_tree
from tests.agent.test_telemetry_rapl import intel_client_tree
from tests.agent.test_telemetry_support import FakeGpu, FakeNvml, a10_from_nvidia_smi

Make = Callable[[Path], TelemetrySource[Any, Any]]

WORKING: dict[str, Make] = {
    "nvml": lambda tmp: NvmlSource(nvml=FakeNvml([a10_from_nvidia_smi()[0]])),
    "jetson": lambda tmp: JetsonSource(root=nano_tree(tmp), nvpmodel_query=lambda: None),
    "rapl": lambda tmp: RaplSource(root=intel_client_tree(tmp)),
}
NOT_HERE: dict[str, tuple[Make, str]] = {
    "nvml": (
        lambda tmp: NvmlSource(nvml=FakeNvml([FakeGpu()], init_error="NVMLError_DriverNotLoaded")),
        "Driver Not Loaded",
    ),
    "jetson": (
        lambda tmp: JetsonSource(
            root=write_tree(tmp, {"proc/device-tree/model": b"Raspberry Pi 4\x00"})
        ),
        "not a Jetson",
    ),
    "rapl": (lambda tmp: RaplSource(root=tmp), "no RAPL"),
}


@pytest.mark.parametrize("kind", sorted(WORKING))
def test_a_working_source_describes_samples_and_meters(kind: str, tmp_path: Path) -> None:
    with WORKING[kind](tmp_path) as source:
        assert source.name == kind
        assert source.status().available and source.status().reason == ""
        assert source.describe() is not None
        assert source.sample() is not None
        first, second = source.energy_meter(), source.energy_meter()
        assert first is not second and not first.running
        with first:
            assert first.running
        reading = first.reading
        assert reading is not None and not first.running
        assert reading.joules is not None and reading.joules >= 0
        assert reading.resolution_j is not None and reading.resolution_j > 0
        assert reading.reason == "" and reading.interval_s >= 0
        assert sum(j for _, j in reading.parts) == pytest.approx(reading.joules)
        assert second.reading is None  # meters are independent


@pytest.mark.parametrize("kind", sorted(NOT_HERE))
def test_an_unavailable_source_says_why_and_guesses_nothing(kind: str, tmp_path: Path) -> None:
    make, why = NOT_HERE[kind]
    with make(tmp_path) as source:
        status = source.status()
        assert not status.available and why in status.reason
        assert source.describe() is None and source.sample() is None
        with source.energy_meter() as meter:
            pass
        assert meter.reading is not None
        assert meter.reading.joules is None and meter.reading.resolution_j is None
        assert meter.reading.reason == status.reason
