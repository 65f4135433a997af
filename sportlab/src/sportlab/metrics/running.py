"""Running metrics: grade-adjusted pace (Minetti energy cost) and Daniels/Gilbert VDOT."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from sportlab._typing import ArrayLike
from sportlab.plausible import clean, require_finite

# Minetti's polynomial is fitted on treadmill gradients from -45 % to +45 %.
_MINETTI_GRADE_LIMIT = 0.45


def minetti_energy_cost(grade: ArrayLike | float) -> np.ndarray | float:
    """Energy cost of running (J per kg per m) at a gradient (rise/run, e.g. 0.1 = 10 %).

    ``Cr = 155.4 i^5 - 30.4 i^4 - 43.3 i^3 + 46.3 i^2 + 19.5 i + 3.6``; 3.6 J/kg/m on the flat.
    Minetti AE, Moia C, Roi GS, Susta D, Ferretti G. Energy cost of walking and running at
    extreme uphill and downhill slopes. J Appl Physiol 2002;93:1039-1046. Gradients are clipped
    to the measured range of -0.45 to +0.45. An infinite gradient raises ValueError (NaN, a
    missing sample, stays NaN).
    """
    _require_finite_grade(grade)
    i = np.clip(np.asarray(grade, dtype=float), -_MINETTI_GRADE_LIMIT, _MINETTI_GRADE_LIMIT)
    cost = ((((155.4 * i - 30.4) * i - 43.3) * i + 46.3) * i + 19.5) * i + 3.6
    return float(cost) if cost.ndim == 0 else cost


def _require_finite_grade(grade: ArrayLike | float) -> None:
    if np.isinf(np.asarray(grade, dtype=float)).any():
        raise ValueError(f"grade must be finite (rise/run), got an infinite value in {grade!r}")


def grade_adjusted_pace(
    speed_m_s: ArrayLike | float, grade: ArrayLike | float
) -> np.ndarray | float | pd.Series:
    """Grade-adjusted speed (m/s): the flat-ground speed with the same metabolic power.

    Metabolic power per kg is ``Cr(i) * v`` (Minetti et al. 2002, see
    :func:`minetti_energy_cost`), so the equivalent flat speed is ``v * Cr(i) / Cr(0)``. Returned
    as a speed in m/s (convert to pace with ``1000 / v`` s/km). A Series input keeps its index.
    A negative or infinite speed raises ValueError; NaN (a missing sample) stays NaN, and so does
    a speed above :data:`sportlab.plausible.BOUNDS` (75 m/s), with an ImplausibleSampleWarning.
    """
    require_finite("speed_m_s", speed_m_s, allow_nan=True)
    # Above 75 m/s (sportlab.plausible.BOUNDS) is no runner: missing, with a warning.
    speed = clean(np.asarray(speed_m_s, dtype=float), "speed_m_s", stacklevel=3)
    adjusted = (
        speed
        * np.asarray(minetti_energy_cost(grade))
        / minetti_energy_cost(0.0)
    )
    if isinstance(speed_m_s, pd.Series):
        return pd.Series(adjusted, index=speed_m_s.index, name="grade_adjusted_speed_m_s")
    return float(adjusted) if adjusted.ndim == 0 else adjusted


def _vo2_ml_kg_min(velocity_m_min: float | np.ndarray) -> float | np.ndarray:
    # Oxygen cost of running at a velocity (m/min), Daniels & Gilbert 1979.
    return -4.60 + 0.182258 * velocity_m_min + 0.000104 * velocity_m_min**2


def _fraction_vo2max(time_min: float | np.ndarray) -> float | np.ndarray:
    # Fraction of VO2max sustainable for a race of this duration (min), Daniels & Gilbert 1979.
    return (
        0.8 + 0.1894393 * np.exp(-0.012778 * time_min) + 0.2989558 * np.exp(-0.1932605 * time_min)
    )


def _require_positive(name: str, value: ArrayLike | float) -> None:
    values = np.asarray(value, dtype=float)
    if values.size == 0 or np.any(~(values > 0)) or not np.isfinite(values).all():
        raise ValueError(f"{name} must be positive and finite, got {value!r}")


def vdot(distance_m: ArrayLike | float, time_s: ArrayLike | float) -> np.ndarray | float:
    """Daniels' VDOT (ml/kg/min, "pseudo VO2max") from a race distance (m) and time (s).

    ``VDOT = VO2(v) / %max(t)`` with v in m/min and t in min:
    ``VO2 = -4.60 + 0.182258 v + 0.000104 v^2`` and
    ``%max = 0.8 + 0.1894393 exp(-0.012778 t) + 0.2989558 exp(-0.1932605 t)``.
    Daniels J, Gilbert J. Oxygen Power: Performance Tables for Distance Runners. Tempe, AZ, 1979;
    tabulated in Daniels J. Daniels' Running Formula (e.g. 5 km in 20:00 ~ VDOT 49.8).
    """
    _require_positive("distance_m", distance_m)
    _require_positive("time_s", time_s)
    time_min = np.asarray(time_s, dtype=float) / 60.0
    velocity = np.asarray(distance_m, dtype=float) / time_min
    result = _vo2_ml_kg_min(velocity) / _fraction_vo2max(time_min)
    return float(result) if np.ndim(result) == 0 else result


def race_time_s(vdot_value: float, distance_m: float) -> float:
    """Race time (s) over ``distance_m`` that the Daniels/Gilbert equations give for a VDOT.

    The inverse of :func:`vdot`, solved numerically (VDOT falls monotonically with time).
    Daniels J, Gilbert J. Oxygen Power: Performance Tables for Distance Runners. Tempe, AZ, 1979
    (checked against the race-equivalence table of Daniels' Running Formula in the tests).
    """
    _require_positive("vdot_value", vdot_value)
    _require_positive("distance_m", distance_m)
    return float(brentq(lambda t: vdot(distance_m, t) - vdot_value, 60.0, 60.0 * 60 * 24))
