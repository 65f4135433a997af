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
