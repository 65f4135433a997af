"""Heart-rate variability: rMSSD, ln rMSSD, and a readiness band from a rolling baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sportlab._typing import ArrayLike


def rmssd(rr_ms: ArrayLike) -> float:
    """Root mean square of successive RR-interval differences (ms).

    ``sqrt(mean(diff(RR)^2))``. Task Force of the European Society of Cardiology and the North
    American Society of Pacing and Electrophysiology. Heart rate variability: standards of
    measurement, physiological interpretation and clinical use. Circulation 1996;93:1043-1065.
    RR intervals must be artefact-corrected beforehand; NaN intervals are dropped.
    """
    rr = np.asarray(rr_ms, dtype=float)
    rr = rr[~np.isnan(rr)]
    if rr.size < 2:
        raise ValueError("rMSSD needs at least two RR intervals")
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)))


def ln_rmssd(rr_ms: ArrayLike) -> float:
    """Natural log of rMSSD (ms): makes the skewed rMSSD close to normal for day-to-day
    monitoring (Plews DJ, Laursen PB, Stanley J, Kilding AE, Buchheit M. Training adaptation and
    heart rate variability in elite endurance athletes. Sports Med 2013;43:773-781)."""
    return float(np.log(rmssd(rr_ms)))


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

    Missed mornings are tolerated: the rolling mean needs ``rolling_days - 2`` measurements and
    the baseline half of ``baseline_days``.

    Returns columns ``ln_rmssd``, ``rolling_mean``, ``baseline_mean``, ``swc_low``, ``swc_high``,
    and ``below_swc`` (boolean, False while the baseline is not yet available).
    """
    series = ln_rmssd_daily.astype("float64")
    rolling_mean = series.rolling(rolling_days, min_periods=max(1, rolling_days - 2)).mean()
    history = series.shift(1).rolling(baseline_days, min_periods=baseline_days // 2)
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
    return frame
