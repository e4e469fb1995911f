"""An entry's value and noise from a stored measurement, plain and paired (no agent needed).

Measurements are real agent results recorded in a real SQLite cost DB; the
samples are chosen so every statistic has a known value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetnas.agent.settings import resolve_settings
from fleetnas.agent.stats import latency_stats
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, Measurement
from fleetnas.controller.lut import (
    STATISTICS,
    cli_name,
    entry_latency,
    entry_noise,
    from_cli_name,
    sample_cv,
)

SAMPLES = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 5.0]  # one slowed run


def _record(db: CostDB, samples: list[float], *, paired: agent_pb2.PairedResult | None = None,
            ) -> Measurement:
    request = agent_pb2.BenchmarkSettings(
        method=agent_pb2.METHOD_PAIRED if paired is not None else agent_pb2.METHOD_PLAIN)
    settings = resolve_settings(request, max_timeout_s=60.0, memory_cap_bytes=1 << 30,
                                available_providers=["CPUExecutionProvider"])
    sha = ("b" if paired is not None else "a") * 64
    db.record_model(sha, 1)
    result = agent_pb2.BenchmarkResult(model_sha256=sha, settings=settings, samples_ms=samples,
                                       stats=latency_stats(samples), started_at=100.0)
    if paired is not None:
        result.paired.CopyFrom(paired)
    return db.record_measurement("dev", result)


def test_each_statistic_of_a_plain_measurement(tmp_path: Path) -> None:
    with CostDB(tmp_path / "cost.db") as db:
        m = _record(db, SAMPLES)
    assert entry_latency(m, "median") == m.latency_ms == pytest.approx(1.45)
    assert entry_latency(m, "min") == 1.0
    # 10 % cut from each end: the slowed run and the fastest go.
    assert entry_latency(m, "trimmed_mean") == pytest.approx(sum(SAMPLES[1:9]) / 8)
    assert entry_latency(m, "p10") == pytest.approx(1.09)  # between 1.0 and 1.1
    assert entry_noise(m) == pytest.approx(sample_cv(SAMPLES))
    with pytest.raises(ValueError, match="choose one of"):
        entry_latency(m, "mode")
    assert [from_cli_name(cli_name(s)) for s in STATISTICS] == list(STATISTICS)
    assert cli_name("trimmed_mean") == "trimmed-mean"


def test_a_paired_measurement_uses_its_ratios_and_its_reference_drift(tmp_path: Path) -> None:
    ratios = [0.5, 0.52, 0.54, 0.56, 0.58]
    reference = [2.2, 2.2, 2.2, 2.2, 2.2]  # ran 10 % slower than calibrated: drift 0.1
    paired = agent_pb2.PairedResult(
        reference_name="ref", reference_sha256="c" * 64, reference_samples_ms=reference,
        ratios=ratios, ratio_median=0.54, ratio_cv=0.05, reference_calibrated_ms=2.0,
        reference_calibrated_at=90.0, latency_ms=1.08,
    )  # fmt: skip
    with CostDB(tmp_path / "cost.db") as db:
        m = _record(db, [9.0, 9.5, 10.0, 10.5, 11.0], paired=paired)
    assert entry_latency(m, "median") == m.latency_ms == pytest.approx(1.08)
    assert entry_latency(m, "min") == pytest.approx(0.5 * 2.0)  # ratio x calibrated, not ms
    # The ratios' CV is ~5 %; the reference's 10 % drift is the larger noise figure.
    assert sample_cv([r * 2.0 for r in ratios]) < 0.06
    assert entry_noise(m) == pytest.approx(0.1)
