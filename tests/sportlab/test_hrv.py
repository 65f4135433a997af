"""rMSSD, ln rMSSD and the readiness band."""

import math

import numpy as np
import pandas as pd
import pytest

from sportlab.metrics import hrv_readiness, ln_rmssd, rmssd


def test_rmssd_worked_example():
    # Task Force 1996 definition. RR 800, 810, 790, 805 ms: differences 10, -20, 15;
    # mean square (100 + 400 + 225) / 3 = 241.67; root 15.546 ms.
    assert rmssd([800, 810, 790, 805]) == pytest.approx(math.sqrt(725 / 3))
    assert ln_rmssd([800, 810, 790, 805]) == pytest.approx(math.log(math.sqrt(725 / 3)))
    with pytest.raises(ValueError):
        rmssd([800])


def test_readiness_flags_a_sustained_drop_below_the_swc_band():
    days = pd.date_range("2026-01-01", periods=60, freq="D")
    # Day-to-day swings of +/-0.05 (SD ~0.05, band +/-0.025) average out over 7 days.
    values = 4.2 + 0.05 * np.where(np.arange(60) % 2 == 0, 1.0, -1.0)
    values[50:] -= 0.4  # ten days of suppressed HRV
    result = hrv_readiness(pd.Series(values, index=days))
    assert not result["below_swc"].iloc[:50].any()
    assert result["below_swc"].iloc[55:].all()
    # The band is the baseline mean +/- 0.5 SD of the 28 days before.
    history = values[31:59]
    assert result["swc_low"].iloc[59] == pytest.approx(history.mean() - 0.5 * history.std(ddof=1))


def test_rmssd_never_differences_beats_either_side_of_a_gap():
    # Task Force (1996): rMSSD is over successive RR intervals. With 810 | NaN | 790 the pairs
    # (810, NaN) and (NaN, 790) are invalid; 810 and 790 were not successive beats.
    # Valid differences: 810-800 = 10, 805-790 = 15, 795-805 = -10 -> sqrt((100+225+100)/3).
    rr = [800, 810, np.nan, 790, 805, 795]
    assert rmssd(rr) == pytest.approx(math.sqrt(425 / 3))
    with pytest.raises(ValueError, match="rr_ms needs at least two successive"):
        rmssd([800, np.nan, 810])


def test_ln_rmssd_of_a_constant_series_is_refused_by_name():
    with pytest.raises(ValueError, match="rr_ms is constant"):
        ln_rmssd([800.0] * 10)


def test_readiness_windows_count_days_not_rows():
    # Seven mornings measured over nine days: the 7-day mean on the last day covers only the
    # values of its last 7 calendar days, not the last 7 rows.
    days = pd.to_datetime(
        ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05", "2026-01-06", "2026-01-08",
         "2026-01-09"]
    )
    values = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], index=days)
    result = hrv_readiness(values, baseline_days=4, rolling_days=7)
    # 2026-01-03 .. 2026-01-09 holds 3, 4, 5, 6, 7.
    assert result["rolling_mean"].iloc[-1] == pytest.approx(5.0)
    # Baseline on 01-09: the 4 days before it (01-05 .. 01-08) hold 4, 5, 6.
    assert result["baseline_mean"].iloc[-1] == pytest.approx(5.0)
    assert result.index.equals(days)
    with pytest.raises(ValueError, match="at most one value per day"):
        hrv_readiness(pd.Series([1.0, 2.0], index=pd.to_datetime(["2026-01-01"] * 2)))
