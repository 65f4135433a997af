"""PMC, ACWR, session-RPE load, monotony and strain against worked examples."""

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sportlab.metrics import acwr, as_daily, monotony, pmc, session_rpe_load, strain, trimp


def _reference_pmc(loads, tau_ctl, tau_atl, k):
    # Straight transcription of the day-by-day recurrence, as GoldenCheetah/TrainingPeaks state it.
    ctl = atl = 0.0
    rows = []
    for load in loads:
        tsb = ctl - atl  # yesterday's balance
        ctl += (load - ctl) * k(tau_ctl)
        atl += (load - atl) * k(tau_atl)
        rows.append((ctl, atl, tsb))
    return np.array(rows)


@pytest.mark.parametrize(
    ("form", "k"),
    [
        ("exponential", lambda tau: 1 - math.exp(-1 / tau)),
        ("linear", lambda tau: 1 / tau),
    ],
)
def test_pmc_matches_the_daily_recurrence(form, k):
    loads = np.random.default_rng(1).gamma(2.0, 50.0, size=120)
    loads[::7] = 0.0
    result = pmc(loads, form=form)
    np.testing.assert_allclose(result.to_numpy(), _reference_pmc(loads, 42, 7, k), rtol=1e-12)


def test_pmc_first_days_worked_example():
    # 100 on day 0 from zero: CTL = 100 (1 - e^-1/42) = 2.35283, ATL = 100 (1 - e^-1/7) = 13.31221;
    # TrainingPeaks form: 100/42 = 2.3810 and 100/7 = 14.2857. TSB is yesterday's CTL - ATL.
    exp_form = pmc([100.0, 0.0])
    assert exp_form["ctl"].iloc[0] == pytest.approx(2.35283, abs=1e-5)
    assert exp_form["atl"].iloc[0] == pytest.approx(13.31221, abs=1e-5)
    assert exp_form["tsb"].iloc[0] == 0.0
    assert exp_form["tsb"].iloc[1] == pytest.approx(2.35283 - 13.31221, abs=1e-5)
    lin = pmc([100.0], form="linear")
    assert lin["ctl"].iloc[0] == pytest.approx(100 / 42)
    assert lin["atl"].iloc[0] == pytest.approx(100 / 7)


def test_pmc_fills_rest_days_with_zero_load():
    sessions = pd.Series(
        [50.0, 70.0, 100.0], index=pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-04"])
    )
    daily = as_daily(sessions)
    assert daily.tolist() == [120.0, 0.0, 0.0, 100.0]
    assert len(pmc(sessions)) == 4


def test_pmc_rejects_unknown_form():
    with pytest.raises(ValueError, match="form"):
        pmc([1.0], form="quadratic")


@settings(max_examples=40, deadline=None)
@given(
    load=st.floats(min_value=1.0, max_value=2000.0),
    tau=st.integers(min_value=3, max_value=60),
    form=st.sampled_from(["exponential", "linear"]),
)
def test_constant_load_drives_ctl_and_atl_to_that_load(load, tau, form):
    result = pmc(np.full(25 * tau, load), ctl_days=tau, atl_days=max(1, tau // 6), form=form)
    assert result["ctl"].iloc[-1] == pytest.approx(load, rel=1e-6)
    assert result["atl"].iloc[-1] == pytest.approx(load, rel=1e-6)
    assert abs(result["tsb"].iloc[-1]) < 1e-6 * load


def test_acwr_ewma_williams_2017_recurrence():
    # Williams et al. 2017: EWMA_today = load * lam + (1 - lam) * EWMA_yesterday, lam = 2/(N+1).
    # Acute lam = 2/8 = 0.25, chronic lam = 2/29; seeded with day 0's load.
    # Day 1 (load 0): acute 0.75*100 = 75, chronic 100*27/29 = 93.1034.
    # Day 2 (load 200): acute 0.25*200 + 0.75*75 = 106.25,
    #                   chronic 200*2/29 + 93.1034*27/29 = 100.4756.
    result = acwr([100.0, 0.0, 200.0], method="ewma")
    np.testing.assert_allclose(result["acute"], [100.0, 75.0, 106.25])
    np.testing.assert_allclose(result["chronic"], [100.0, 2700 / 29, 400 / 29 + 72900 / 841])
    assert result["acwr"].isna().all()  # still inside the 28-day warm-up


def test_acwr_ewma_ratio_after_warm_up():
    loads = np.full(40, 100.0)
    result = acwr(loads, method="ewma")
    assert result["acwr"].iloc[:27].isna().all()
    np.testing.assert_allclose(result["acwr"].iloc[27:], 1.0)


def test_acwr_rolling_spike_week():
    # 3 weeks at 100 then a week at 200: acute 200, chronic (21*100 + 7*200)/28 = 125 -> 1.6.
    loads = [100.0] * 21 + [200.0] * 7
    result = acwr(loads, method="rolling")
    assert result["acwr"].iloc[-1] == pytest.approx(1.6)
    assert result["acwr"].iloc[:-1].isna().all()


def test_session_rpe_load_foster_2001():
    # Foster et al. 2001: session load = CR-10 RPE x minutes; RPE 5 ("hard") for 60 min = 300 AU.
    assert session_rpe_load(5, 60) == 300.0
    np.testing.assert_array_equal(session_rpe_load([3, 7], [45, 90]), [135.0, 630.0])
    with pytest.raises(ValueError):
        session_rpe_load(11, 60)
    # A 75-min session given in seconds (4500) was 33 750 AU, a week's load in one day.
    with pytest.raises(ValueError, match="at most 1440 .*minutes, not seconds"):
        session_rpe_load(5, 4500)
    with pytest.raises(ValueError, match="at most 1440 .*minutes, not seconds"):
        trimp(4500, 150, 50, 190)  # Banister's TRIMP takes minutes too
    assert np.isnan(session_rpe_load(5, np.nan)) and session_rpe_load(5, 1440) == 7200.0


def test_monotony_and_strain_foster_1998():
    week = [300.0, 0.0, 450.0, 300.0, 0.0, 600.0, 300.0]
    expected_monotony = statistics.mean(week) / statistics.stdev(week)
    assert monotony(week).iloc[-1] == pytest.approx(expected_monotony)
    assert strain(week).iloc[-1] == pytest.approx(sum(week) * expected_monotony)
    assert monotony(week).iloc[:-1].isna().all()
    assert np.isinf(monotony([100.0] * 7).iloc[-1])
