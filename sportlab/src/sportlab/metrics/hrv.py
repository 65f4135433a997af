"""Heart-rate variability: rMSSD, ln rMSSD, and a readiness band from a rolling baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sportlab._typing import ArrayLike
from sportlab.plausible import clean, require_finite


def rmssd(rr_ms: ArrayLike) -> float:
    """Root mean square of successive RR-interval differences (ms).

    ``sqrt(mean(diff(RR)^2))`` over pairs of *successive* beats. Task Force of the European
    Society of Cardiology and the North American Society of Pacing and Electrophysiology. Heart
    rate variability: standards of measurement, physiological interpretation and clinical use.
    Circulation 1996;93:1043-1065. RR intervals must be artefact-corrected beforehand; a NaN
    interval (a rejected or missed beat) is a break in the sequence: the differences are taken
    first and those involving a NaN dropped, so two beats either side of the gap, which were not
    successive, are never differenced. An interval outside 250-2500 ms or infinite
    (:data:`sportlab.plausible.BOUNDS`) is such a break too, with an
    :class:`sportlab.plausible.ImplausibleSampleWarning`.
    """
    rr = clean(np.asarray(rr_ms, dtype=float), "rr_ms")
    differences = np.diff(rr)
    differences = differences[~np.isnan(differences)]
    if differences.size < 1:
        raise ValueError("rr_ms needs at least two successive valid RR intervals for rMSSD")
    return float(np.sqrt(np.mean(differences**2)))


def sdnn(rr_ms: ArrayLike) -> float:
    """Standard deviation of the NN (normal-to-normal RR) intervals, in ms.

    ``sqrt(sum((NN - mean NN)^2) / (N - 1))``: the sample SD over every valid interval. Task
    Force of the ESC/NASPE, Circulation 1996;93:1043-1065 ("SDNN"; the Task Force standardises
    5-min short-term and 24-h recordings, and SDNN from recordings of different lengths is not
    comparable). NaN intervals (rejected beats) and implausible ones
    (:data:`sportlab.plausible.BOUNDS`, with a warning) are left out. Needs two intervals.
    """
    rr = clean(np.asarray(rr_ms, dtype=float), "rr_ms")
    rr = rr[~np.isnan(rr)]
    if rr.size < 2:
        raise ValueError("rr_ms needs at least two valid RR intervals for SDNN")
    return float(np.std(rr, ddof=1))


def pnn50(rr_ms: ArrayLike) -> float:
    """Percentage of successive NN-interval differences larger than 50 ms.

    ``100 * count(|NN[i+1] - NN[i]| > 50 ms) / count(differences)`` over pairs of *successive*
    beats (Task Force of the ESC/NASPE, Circulation 1996;93:1043-1065: "NN50 count divided by
    the total number of all NN intervals"; like hrv-analysis and neurokit2, the denominator here
    is the number of differences, one fewer than the intervals). A NaN or implausible interval
    breaks the sequence as in :func:`rmssd`.
    """
    rr = clean(np.asarray(rr_ms, dtype=float), "rr_ms")
    differences = np.diff(rr)
    differences = differences[~np.isnan(differences)]
    if differences.size < 1:
        raise ValueError("rr_ms needs at least two successive valid RR intervals for pNN50")
    return float(100.0 * np.mean(np.abs(differences) > 50.0))


def ln_rmssd(rr_ms: ArrayLike) -> float:
    """Natural log of rMSSD (ms): makes the skewed rMSSD close to normal for day-to-day
    monitoring (Plews DJ, Laursen PB, Stanley J, Kilding AE, Buchheit M. Training adaptation and
    heart rate variability in elite endurance athletes. Sports Med 2013;43:773-781).

    A constant RR series has rMSSD 0 ms, whose log is undefined: that raises ValueError
    (a real heart never beats perfectly evenly; constant intervals mean a broken recording)."""
    value = rmssd(rr_ms)
    if value == 0.0:
        raise ValueError("rr_ms is constant (rMSSD = 0 ms), so ln rMSSD is undefined")
    return float(np.log(value))


def hrv_readiness(
    ln_rmssd_daily: pd.Series,
    baseline_days: int = 28,
    rolling_days: int = 7,
    swc_factor: float = 0.5,
) -> pd.DataFrame:
    """Daily ln rMSSD with its rolling mean, baseline and smallest-worthwhile-change band.

    The ``rolling_days`` mean of ln rMSSD is compared with the mean +/- ``swc_factor`` x SD of
    the preceding ``baseline_days`` (yesterday and before, so today's value does not move its own
    reference). A rolling mean below the band suggests reduced readiness (Plews et al. 2013;
    Buchheit M. Monitoring training status with HR measures: do all roads lead to Rome? Front
    Physiol 2014;5:73, where the SWC is 0.5 x the within-athlete SD).

    Windows are counted in calendar days, not rows: with a DatetimeIndex (one measurement per
    day at most), the rolling mean covers today and the ``rolling_days - 1`` days before, the
    baseline the ``baseline_days`` days before today, whether or not every morning was measured.
    Missed mornings (absent dates or NaN) are tolerated: the rolling mean needs
    ``rolling_days - 2`` measurements and the baseline half of ``baseline_days``. A series
    without dates is taken as one value per consecutive day.

    Returns columns ``ln_rmssd``, ``rolling_mean``, ``baseline_mean``, ``swc_low``, ``swc_high``,
    and ``below_swc`` (boolean, False while the baseline is not yet available).
    """
    for name, days in (("baseline_days", baseline_days), ("rolling_days", rolling_days)):
        if days < 1:
            raise ValueError(f"{name} must be at least 1, got {days}")
    require_finite("swc_factor", swc_factor)
    # Outside 0..ln 300 (sportlab.plausible.BOUNDS) or inf: a missed day, with a warning.
    series = clean(pd.Series(ln_rmssd_daily, dtype="float64"), "ln_rmssd")
    original_index = series.index
    if isinstance(series.index, pd.DatetimeIndex):
        days_index = series.index.normalize()
        if not days_index.is_monotonic_increasing or days_index.has_duplicates:
            raise ValueError(
                "ln_rmssd_daily needs at most one value per day, in date order"
            )
    else:
        days_index = pd.date_range("2000-01-01", periods=len(series), freq="D")
    series.index = days_index
    rolling_mean = series.rolling(
        f"{rolling_days}D", min_periods=max(1, rolling_days - 2)
    ).mean()
    # closed="left": the baseline is the days before today, so today cannot move its reference.
    history = series.rolling(
        f"{baseline_days}D", closed="left", min_periods=max(2, baseline_days // 2)
    )
    baseline_mean = history.mean()
    half_band = swc_factor * history.std(ddof=1)
    frame = pd.DataFrame(
        {
            "ln_rmssd": series,
            "rolling_mean": rolling_mean,
            "baseline_mean": baseline_mean,
            "swc_low": baseline_mean - half_band,
            "swc_high": baseline_mean + half_band,
        }
    )
    frame["below_swc"] = (frame["rolling_mean"] < frame["swc_low"]).fillna(False).astype(bool)
    frame.index = original_index
    return frame
