"""Running metrics: grade-adjusted pace (Minetti energy cost) and Daniels/Gilbert VDOT."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from sportlab._typing import ArrayLike
from sportlab.plausible import clean, require_finite

# Minetti's polynomial is fitted on treadmill gradients from -45 % to +45 %.
_MINETTI_GRADE_LIMIT = 0.45
#: The steepest gradient (rise/run, either way) minetti_energy_cost and grade_adjusted_pace take:
#: 1.0 is 100 %, a 45-degree slope; a larger number is a grade given in percent.
MAX_GRADE = 1.0


class GradeError(ValueError):
    """A gradient steeper than :data:`MAX_GRADE` (100 %): almost surely a percentage given where
    a fraction is expected (10 for 10 % reads as 1 000 %). ``.grade`` is the first such value."""

    def __init__(self, grade: float) -> None:
        self.grade = grade
        super().__init__(
            f"grade {grade:g} is steeper than +/-{MAX_GRADE:g} (100 %, a 45-degree slope): "
            "grades are fractions (rise/run), 0.10 = 10 %; divide a percentage by 100. "
            "Minetti et al. 2002 measured -0.45 to +0.45 (beyond that the cost is held at the "
            "+/-45 % value)")


def minetti_energy_cost(grade: ArrayLike | float) -> np.ndarray | float:
    """Energy cost of running (J per kg per m) at a gradient (rise/run, e.g. 0.1 = 10 %).

    ``Cr = 155.4 i^5 - 30.4 i^4 - 43.3 i^3 + 46.3 i^2 + 19.5 i + 3.6``; 3.6 J/kg/m on the flat.
    Minetti AE, Moia C, Roi GS, Susta D, Ferretti G. Energy cost of walking and running at
    extreme uphill and downhill slopes. J Appl Physiol 2002;93:1039-1046. Gradients between
    0.45 and 1.0 (either way) are clipped to the measured range of -0.45 to +0.45; a gradient
    steeper than 1.0 (:data:`MAX_GRADE`, 100 %) raises :class:`GradeError`: it is a percentage
    (10 meaning 10 %), which clipping would silently read as 45 %. An infinite gradient raises
    ValueError (NaN, a missing sample, stays NaN).
    """
    i = np.asarray(grade, dtype=float)
    _require_grade(i, grade)
    i = np.clip(i, -_MINETTI_GRADE_LIMIT, _MINETTI_GRADE_LIMIT)
    cost = ((((155.4 * i - 30.4) * i - 43.3) * i + 46.3) * i + 19.5) * i + 3.6
    return float(cost) if cost.ndim == 0 else cost


def _require_grade(grades: np.ndarray, grade: ArrayLike | float) -> None:
    if grades.size == 0:
        return
    # A min and a max pass; with a NaN (a missing sample) in the array both are NaN, and the
    # slower look below finds the infinite or steep values, if any.
    if grades.min() >= -MAX_GRADE and grades.max() <= MAX_GRADE:
        return
    if np.isinf(grades).any():
        raise ValueError(f"grade must be finite (rise/run), got an infinite value in {grade!r}")
    with np.errstate(invalid="ignore"):
        steep = grades[np.abs(grades) > MAX_GRADE]
    if steep.size:
        raise GradeError(float(steep.flat[0]))


def grade_adjusted_pace(
    speed_m_s: ArrayLike | float, grade: ArrayLike | float
) -> np.ndarray | float | pd.Series:
    """Grade-adjusted speed (m/s): the flat-ground speed with the same metabolic power.

    Metabolic power per kg is ``Cr(i) * v`` (Minetti et al. 2002, see
    :func:`minetti_energy_cost`), so the equivalent flat speed is ``v * Cr(i) / Cr(0)``. Returned
    as a speed in m/s (convert to pace with ``1000 / v`` s/km). A Series input keeps its index.
    A negative or infinite speed raises ValueError; NaN (a missing sample) stays NaN, and so does
    a speed above :data:`sportlab.plausible.BOUNDS` (75 m/s), with an ImplausibleSampleWarning.
    A grade steeper than 1.0 (100 %) raises :class:`GradeError`: grades are fractions, 0.10 =
    10 % (see :func:`minetti_energy_cost`).
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


# The region the Daniels/Gilbert equations were tabulated on: VDOT 30-85 for races from 1500 m to
# the marathon (Daniels J. Daniels' Running Formula, 3rd ed. Human Kinetics 2014, the VDOT
# race-equivalence table; Oxygen Power 1979 derived those tables from the same two equations).
# The data the equations were fitted to are not published with them, so the tables are the
# documented range. The VDOT bounds are widened by half a point because the tabulated times are
# rounded to the second (one second at 1500 m is ~0.4 VDOT): every time in the table is accepted.
#: (shortest, longest) race distance in metres vdot and race_time_s accept.
VDOT_DISTANCE_M: tuple[float, float] = (1500.0, 42195.0)
#: (lowest, highest) VDOT vdot returns and race_time_s accepts, ml/kg/min.
VDOT_RANGE: tuple[float, float] = (29.5, 85.5)


class VdotRangeError(ValueError):
    """A race (or a VDOT) outside the region the Daniels/Gilbert equations were tabulated on:
    :data:`VDOT_RANGE` over :data:`VDOT_DISTANCE_M`. ``.name`` is the argument at fault."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


_RANGE_SOURCE = (
    "the range the Daniels/Gilbert equations were tabulated on (VDOT 30-85 for races of "
    "1500 m to the marathon, Daniels' Running Formula)"
)


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


def _require_race_distance(distance_m: ArrayLike | float) -> None:
    distances = np.asarray(distance_m, dtype=float)
    outside = (distances < VDOT_DISTANCE_M[0]) | (distances > VDOT_DISTANCE_M[1])
    if outside.any():
        raise VdotRangeError(
            "distance_m",
            f"distance_m {distances[outside].flat[0]:g} m is outside {VDOT_DISTANCE_M[0]:g}-"
            f"{VDOT_DISTANCE_M[1]:g} m, {_RANGE_SOURCE}: these equations say nothing about it",
        )


def _vdot(distance_m: ArrayLike | float, time_s: ArrayLike | float) -> np.ndarray:
    time_min = np.asarray(time_s, dtype=float) / 60.0
    velocity = np.asarray(distance_m, dtype=float) / time_min
    return np.asarray(_vo2_ml_kg_min(velocity) / _fraction_vo2max(time_min))


def vdot(distance_m: ArrayLike | float, time_s: ArrayLike | float) -> np.ndarray | float:
    """Daniels' VDOT (ml/kg/min, "pseudo VO2max") from a race distance (m) and time (s).

    ``VDOT = VO2(v) / %max(t)`` with v in m/min and t in min:
    ``VO2 = -4.60 + 0.182258 v + 0.000104 v^2`` and
    ``%max = 0.8 + 0.1894393 exp(-0.012778 t) + 0.2989558 exp(-0.1932605 t)``.
    Daniels J, Gilbert J. Oxygen Power: Performance Tables for Distance Runners. Tempe, AZ, 1979;
    tabulated in Daniels J. Daniels' Running Formula (e.g. 5 km in 20:00 ~ VDOT 49.8).

    The equations are used only where they were tabulated: a race of 1500 m to the marathon
    (:data:`VDOT_DISTANCE_M`) whose VDOT is 30-85 (:data:`VDOT_RANGE`, widened by half a point
    for the tables' rounding). Anything else (5000 m in 1 s gave 7.3 million, in ten days -5.7)
    raises :class:`VdotRangeError` naming the argument; a distance or time that is not positive
    and finite raises ValueError.
    """
    _require_positive("distance_m", distance_m)
    _require_positive("time_s", time_s)
    _require_race_distance(distance_m)
    result = _vdot(distance_m, time_s)
    outside = (result < VDOT_RANGE[0]) | (result > VDOT_RANGE[1])
    if outside.any():
        distances, times = np.broadcast_arrays(
            np.asarray(distance_m, dtype=float), np.asarray(time_s, dtype=float)
        )
        where = np.argwhere(outside)[0] if outside.ndim else ()
        raise VdotRangeError(
            "time_s",
            f"{distances[tuple(where)]:g} m in {times[tuple(where)]:g} s gives a VDOT of "
            f"{result[tuple(where)]:.4g}, outside {VDOT_RANGE[0]:g}-{VDOT_RANGE[1]:g}, "
            f"{_RANGE_SOURCE}: check the time and distance (seconds and metres)",
        )
    return float(result) if result.ndim == 0 else result


def race_time_s(vdot_value: float, distance_m: float) -> float:
    """Race time (s) over ``distance_m`` that the Daniels/Gilbert equations give for a VDOT.

    The inverse of :func:`vdot`, solved numerically (VDOT falls monotonically with time).
    Daniels J, Gilbert J. Oxygen Power: Performance Tables for Distance Runners. Tempe, AZ, 1979
    (checked against the race-equivalence table of Daniels' Running Formula in the tests).
    A VDOT outside :data:`VDOT_RANGE` or a distance outside :data:`VDOT_DISTANCE_M` raises
    :class:`VdotRangeError`, as in :func:`vdot`.
    """
    _require_positive("vdot_value", vdot_value)
    _require_positive("distance_m", distance_m)
    if not VDOT_RANGE[0] <= vdot_value <= VDOT_RANGE[1]:
        raise VdotRangeError(
            "vdot_value",
            f"vdot_value {vdot_value:g} is outside {VDOT_RANGE[0]:g}-{VDOT_RANGE[1]:g}, "
            f"{_RANGE_SOURCE}",
        )
    _require_race_distance(distance_m)
    return float(brentq(lambda t: float(_vdot(distance_m, t)) - vdot_value, 60.0, 60.0 * 60 * 24))
