"""What the lut CLI prints about a calibration: the line, its uncertainty, its warnings."""

from __future__ import annotations

import pytest

from fleetnas.controller.cli.lut import _echo_calibration
from fleetnas.controller.lut import fit_calibration

SUMS = [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0]


def test_a_disagreeing_calibration_set_is_warned_about_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    measured = [1.1 * s + 2.0 for s in SUMS]
    measured[3] *= 1.5  # one arch measured under a disturbance
    _echo_calibration("calibrated", fit_calibration(SUMS, measured, [f"a{i}" for i in range(7)]))
    out, err = capsys.readouterr()
    assert out.startswith("calibrated on 7 archs: predicted = ")
    assert "leave-one-out RMSPE" in out and "slope " in out
    assert err.startswith("warning: calibration set disagrees with itself: a3")


def test_an_agreeing_calibration_set_prints_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    _echo_calibration("calibrated", fit_calibration(SUMS, [1.1 * s + 2.0 for s in SUMS]))
    out, err = capsys.readouterr()
    assert "1.1000 × sum +2.0000 ms" in out and "leave-one-out RMSPE 0.0%" in out
    assert err == ""
