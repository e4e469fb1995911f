"""Energy per inference from an :class:`EnergyReading` over a timed loop.

The rule for the idle baseline
------------------------------
The headline figure, ``mj_per_inference``, is **gross**: the energy the
meter's scope used during the timed loop, divided by the inferences run in
it. Nothing is subtracted. That is what a device running inferences back to
back pays, and it needs no second measurement that could drift.

When the caller also measured the same scope idle, with the same kind of
meter (same ``method`` and ``scope``) for a window taken while the agent did
nothing (e.g. the second before the worker starts), ``net_mj_per_inference``
is also given: gross minus the idle *power* times the loop's duration. Its
uncertainty adds the idle reading's resolution scaled to the loop's
duration. The idle power is reported too, so a reader can redo the
arithmetic. A net figure is never computed from a baseline measured another
way, and never from a guessed idle power.

Uncertainty
-----------
``uncertainty_mj`` is the reading's ``resolution_j`` per inference. It is
the method's error (counter granularity and update period, or the
integration bound), not the sensor's calibration error, which the hardware
does not state. A loop too short for the method shows up as a large
``relative_uncertainty`` rather than as a confident wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetnas.agent.telemetry._base import EnergyReading


@dataclass(frozen=True)
class EnergyPerInference:
    """Energy per inference (mJ) with its method-bound uncertainty; see the module docstring."""

    method: str
    scope: str
    inferences: int
    interval_s: float
    mj_per_inference: float
    uncertainty_mj: float
    idle_power_w: float | None = None
    net_mj_per_inference: float | None = None
    net_uncertainty_mj: float | None = None

    @property
    def relative_uncertainty(self) -> float | None:
        """``uncertainty_mj / mj_per_inference``; ``None`` when the energy is 0."""
        if self.mj_per_inference <= 0:
            return None
        return self.uncertainty_mj / self.mj_per_inference


def energy_per_inference(
    reading: EnergyReading, inferences: int, *, idle: EnergyReading | None = None
) -> EnergyPerInference | None:
    """Per-inference energy of ``inferences`` runs measured by ``reading``.

    Returns ``None`` when ``reading`` is unreadable (its ``reason`` says
    why). An unreadable ``idle`` reading only drops the net figure.
    Raises ``ValueError`` for ``inferences < 1``, and for an ``idle`` reading
    of another method or scope, or of an empty interval (a baseline measured
    another way is not a baseline).
    """
    if isinstance(inferences, bool) or not isinstance(inferences, int) or inferences < 1:
        raise ValueError(f"inferences must be a positive integer, got {inferences!r}")
    if idle is not None and (idle.method, idle.scope) != (reading.method, reading.scope):
        raise ValueError(
            f"idle baseline measured by {idle.method} over {idle.scope!r}, but the run by "
            f"{reading.method} over {reading.scope!r}: measure both with the same meter"
        )
    if idle is not None and idle.joules is not None and idle.interval_s <= 0:
        raise ValueError("the idle baseline's interval is empty")
    if reading.joules is None or reading.resolution_j is None:
        return None
    gross_mj = reading.joules * 1000.0 / inferences
    uncertainty_mj = reading.resolution_j * 1000.0 / inferences
    idle_w = net_mj = net_uncertainty_mj = None
    if idle is not None and idle.joules is not None and idle.resolution_j is not None:
        idle_w = idle.joules / idle.interval_s
        scale = reading.interval_s / idle.interval_s
        net_mj = (reading.joules - idle_w * reading.interval_s) * 1000.0 / inferences
        net_uncertainty_mj = (
            (reading.resolution_j + idle.resolution_j * scale) * 1000.0 / inferences
        )
    return EnergyPerInference(
        method=reading.method,
        scope=reading.scope,
        inferences=inferences,
        interval_s=reading.interval_s,
        mj_per_inference=gross_mj,
        uncertainty_mj=uncertainty_mj,
        idle_power_w=idle_w,
        net_mj_per_inference=net_mj,
        net_uncertainty_mj=net_uncertainty_mj,
    )
