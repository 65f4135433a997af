"""Elevation gain and loss of a track, with the noise threshold named.

Summing every rise of a recorded altitude counts its noise as climbing: a GPS or barometric
altitude wanders by a metre or so from one sample to the next, and on a flat 80-minute run
that adds up to hundreds of metres (gpxpy's ``get_uphill_downhill`` gives 214 m where the head
unit stored 79 m on one of the test recordings). :func:`elevation_gain` counts a change only
once the altitude has moved at least ``threshold_m`` away from the last counted level
(hysteresis), the method of GoldenCheetah's "elevation hysteresis" setting.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from sportlab._typing import ArrayLike
from sportlab.clock import forwards
from sportlab.plausible import clean, require_finite

#: Default hysteresis (m): the rise or fall from the last counted level that counts. On the
#: test ride (2 h 19 min, 1 250 m of climbing, Garmin barometric altimeter) 3 m gives the head
#: unit's stored total ascent within 1 %; 1 m still counts noise on a flat run.
ELEVATION_THRESHOLD_M = 3.0


class ElevationChange(NamedTuple):
    """Total climbing and descending of a track, in metres (both positive)."""

    gain_m: float
    loss_m: float


def gpxpy_smoothing(altitude_m: np.ndarray) -> np.ndarray:
    """gpxpy's 3-point smoothing: ``0.3 a[i-1] + 0.4 a[i] + 0.3 a[i+1]``, ends unchanged (gpxpy
    1.6, ``gpxpy.geo.calculate_uphill_downhill``)."""
    smoothed = altitude_m.copy()
    if altitude_m.size > 2:
        smoothed[1:-1] = 0.3 * altitude_m[:-2] + 0.4 * altitude_m[1:-1] + 0.3 * altitude_m[2:]
    return smoothed


def elevation_gain(
    altitude_m: ArrayLike,
    threshold_m: float = ELEVATION_THRESHOLD_M,
    smoothing: Literal["none", "gpxpy"] = "none",
) -> ElevationChange:
    """Elevation gain and loss (m) of an altitude series, counting changes of ``threshold_m``.

    Walking the samples in order, a level is kept; when the altitude is ``threshold_m`` or more
    above it, the rise is added to the gain and the level moves there (the same for falls and
    the loss). With ``threshold_m=0`` every rise counts (the plain sum of positive differences).
    ``smoothing="gpxpy"`` first applies gpxpy's 3-point filter (:func:`gpxpy_smoothing`), so
    ``elevation_gain(alt, 0, "gpxpy")`` is gpxpy's ``get_uphill_downhill`` (checked on the test
    recordings). Missing (NaN) and implausible altitudes (:mod:`sportlab.plausible`) are
    skipped. The samples are walked in order, so a timestamped Series whose times go backwards
    is sorted by time first, with a :class:`sportlab.clock.ClockWarning` (shuffled, it climbed
    445 km on a 1 250-m ride); a plain array is taken in the order given. References: the
    hysteresis method of GoldenCheetah's "elevation hysteresis" (GoldenCheetah,
    https://www.goldencheetah.org); gpxpy 1.6 for the smoothing; the default threshold is
    checked against a head unit's stored total ascent (FIT ``session.total_ascent``).
    """
    require_finite("threshold_m", threshold_m)
    if smoothing not in ("none", "gpxpy"):
        raise ValueError(f"smoothing must be 'none' or 'gpxpy', got {smoothing!r}")
    if isinstance(altitude_m, pd.Series):
        altitude_m = forwards(altitude_m, what="elevation_gain")
    altitude = clean(np.asarray(altitude_m, dtype=float), "altitude_m")
    altitude = altitude[~np.isnan(altitude)]
    if altitude.size < 2:
        return ElevationChange(0.0, 0.0)
    if smoothing == "gpxpy":
        altitude = gpxpy_smoothing(altitude)
    if threshold_m == 0:
        steps = np.diff(altitude)
        return ElevationChange(float(steps[steps > 0].sum()), float(-steps[steps < 0].sum()))
    gain = loss = 0.0
    level = float(altitude[0])
    # A sequential rule (each level depends on the last counted one): a plain loop over
    # Python floats, a few ms for a 6-hour 1-Hz ride (benchmarks/sportlab_bench.py).
    for value in altitude.tolist():
        if value - level >= threshold_m:
            gain += value - level
            level = value
        elif level - value >= threshold_m:
            loss += level - value
            level = value
    return ElevationChange(gain, loss)


__all__ = ["ELEVATION_THRESHOLD_M", "ElevationChange", "elevation_gain", "gpxpy_smoothing"]
