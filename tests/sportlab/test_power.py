"""Power metrics: weighted power, intensity/stress, mean-max, critical power, W' balance."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sportlab.datasets import synthetic_ride
from sportlab.metrics import (
    ImplausibleFitWarning,
    critical_power,
    intensity,
    mean_max_power,
    power_zones,
    skiba_tau_s,
    stress_score,
    to_1hz,
    w_prime_balance,
    weighted_power,
)

power_arrays = arrays(
    np.float64,
    st.integers(min_value=1, max_value=400),
    elements=st.floats(min_value=0, max_value=1500, allow_nan=False),
)


def _reference_weighted_power(power, window=30):
    # Coggan's recipe step by step (Allen & Coggan 2010): 30-s rolling average, ^4, mean, 4th root.
    rolling = [sum(power[i - window + 1 : i + 1]) / window for i in range(window - 1, len(power))]
    return (sum(r**4 for r in rolling) / len(rolling)) ** 0.25


def test_one_hour_at_ftp_scores_100():
    # Allen & Coggan 2010: by definition one hour at FTP is intensity 1.0 and a stress score of 100.
    ride = np.full(3600, 250.0)
    wp = weighted_power(ride)
    assert wp == pytest.approx(250.0)
    assert intensity(wp, 250.0) == pytest.approx(1.0)
    assert stress_score(3600, wp, 250.0) == pytest.approx(100.0)
    assert stress_score(1800, 275.0, 250.0) == pytest.approx(50 * 1.1**2)


def test_weighted_power_matches_stepwise_recipe_for_intervals():
    # 1-min on/off intervals at 400/0 W: average 200 W, but the surges cost more.
    power = np.tile(np.concatenate([np.full(60, 400.0), np.zeros(60)]), 10)
    expected = _reference_weighted_power(power.tolist())
    assert weighted_power(power) == pytest.approx(expected)
    assert weighted_power(power) > 1.2 * power.mean()


def _timed(seconds, values):
    start = pd.Timestamp("2026-01-01 10:00:00", tz="UTC")
    return pd.Series(values, index=start + pd.to_timedelta(seconds, unit="s"), dtype="float64")


def test_short_gaps_are_interpolated_and_pauses_are_not_riding():
    # Smart recording: a 3-s step is the timer running, filled in linearly.
    assert to_1hz(_timed([0, 1, 4], [100, 200, 300])).tolist() == pytest.approx(
        [100, 200, 200 + 100 / 3, 200 + 200 / 3, 300]
    )
    # A 15-s step (longer than the 10-s pause threshold) is a stopped timer.
    paused = _timed([0, 1, 16, 17], [100, 200, 300, 400])
    assert to_1hz(paused).tolist() == [100, 200, *[0] * 14, 300, 400]
    assert to_1hz(paused, pauses="drop").tolist() == [100, 200, 300, 400]
    assert to_1hz(paused, pauses="nan").isna().sum() == 14


def test_weighted_power_skips_pauses_but_mean_max_counts_them_as_zero():
    riding = np.tile([150.0, 350.0], 300)  # 10 min of 1-s alternation
    seconds = np.concatenate([np.arange(300), np.arange(300) + 300 + 600])  # a 10-min stop
    ride = _timed(seconds, riding)
    assert weighted_power(ride) == pytest.approx(weighted_power(riding))
    # Pauses left in as 0 W would pull it down by about a sixth; mean-max keeps them as 0 W.
    assert weighted_power(to_1hz(ride)) < 0.9 * weighted_power(riding)
    best = mean_max_power(ride, durations_s=[300, 900])
    assert best.loc[300] == pytest.approx(250.0)
    assert best.loc[900] == pytest.approx(250.0 * 300 / 900)  # 5 min riding + 10 min stopped
    # The best effort of *at least* 900 s is the whole 20 min (10 min riding at 250 W).
    at_least = mean_max_power(ride, durations_s=[300, 900], at_least=True)
    assert at_least.loc[900] == pytest.approx(250.0 * 600 / 1200)


def test_sample_rate_is_taken_from_sample_s_for_plain_arrays():
    rng = np.random.default_rng(3)
    one_hz = np.repeat(rng.uniform(100, 400, 600), 1)
    two_hz = np.repeat(one_hz, 2)  # the same ride sampled twice a second
    assert weighted_power(two_hz, sample_s=0.5) == pytest.approx(weighted_power(one_hz))
    assert mean_max_power(two_hz, [30, 300], sample_s=0.5).tolist() == pytest.approx(
        mean_max_power(one_hz, [30, 300]).tolist()
    )
    # Taken as 1 Hz, the 30-s window would only be 15 s of riding: a different number.
    assert weighted_power(two_hz) != pytest.approx(weighted_power(one_hz))
    with pytest.raises(ValueError, match="sample_s"):
        weighted_power(_timed([0, 1], [100, 200]), sample_s=1.0)


def test_short_dropouts_are_interpolated_long_ones_refused():
    values = np.full(120, 200.0)
    values[50:55] = np.nan
    assert weighted_power(values) == pytest.approx(200.0)
    values[50:80] = np.nan
    with pytest.raises(ValueError, match=r"power_w has no value for 30 s .*max_dropout_s"):
        weighted_power(values)
    assert to_1hz(values, max_dropout_s=60).tolist() == pytest.approx([200.0] * 120)
    with pytest.raises(ValueError, match="power_w has no valid value at all"):
        weighted_power(np.full(100, np.nan))
    with pytest.raises(ValueError, match="power_w is empty"):
        weighted_power([])


def test_power_functions_name_the_missing_power_channel():
    ride = pd.DataFrame({"heart_rate_bpm": [120.0, 121.0]}, index=pd.RangeIndex(2))
    for function in (weighted_power, mean_max_power, to_1hz):
        with pytest.raises(ValueError, match=f"{function.__name__} needs power.*no power_w"):
            function(ride)
    with pytest.raises(ValueError, match="w_prime_balance needs power"):
        w_prime_balance(ride, 250.0, 20_000.0)


def test_mean_max_worked_example():
    curve = mean_max_power([100.0, 300.0, 200.0, 0.0])
    assert curve.to_dict() == {1: 300.0, 2: 250.0, 3: 200.0, 4: 150.0}
    # Best means over exactly d can rise with d (best 2-s 0.75 W, best 3-s 1.0 W); at_least
    # gives the envelope "best mean over at least d seconds".
    assert mean_max_power([1.5, 0.0, 1.5]).tolist() == [1.5, 0.75, 1.0]
    assert mean_max_power([1.5, 0.0, 1.5], at_least=True).tolist() == [1.5, 1.0, 1.0]


@settings(max_examples=60, deadline=None)
@given(power=power_arrays)
def test_mean_max_at_least_never_increases_with_duration(power):
    curve = mean_max_power(power, at_least=True)
    assert (np.diff(curve.to_numpy()) <= 1e-9).all()
    assert curve.iloc[0] == pytest.approx(power.max())
    assert curve.iloc[-1] >= power.mean() - 1e-9


def _best_of(power, d, at_least):
    # The definitions, by brute force: the best mean over every window of d (or more) seconds.
    power = np.asarray(power, dtype=float)
    return max(power[i:j].mean() for i in range(power.size)
               for j in range(i + d, (power.size if at_least else i + d) + 1) if j <= power.size)


@settings(max_examples=80, deadline=None)
@given(
    power=arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 1500, allow_nan=False)),
    data=st.data(),
    at_least=st.booleans(),
)
def test_mean_max_is_the_definition_whatever_other_durations_are_asked(power, data, at_least):
    durations = data.draw(st.lists(st.integers(1, power.size), min_size=1, max_size=8))
    curve = mean_max_power(power, durations, at_least=at_least)
    for d in set(durations):
        expected = _best_of(power, d, at_least)
        assert curve.loc[d] == pytest.approx(expected, rel=1e-12, abs=1e-9)
        alone = mean_max_power(power, [d], at_least=at_least).loc[d]
        assert curve.loc[d] == pytest.approx(alone, rel=1e-12, abs=1e-9)


def test_the_best_20_minutes_of_a_real_ride_do_not_depend_on_the_list(long_ride_as_read):
    # Issue 22: 306.81, 312.43 or 313.24 W for the same ride, depending on what else was asked.
    power = long_ride_as_read["power_w"].copy()
    lists = ([1200], [300, 1200], [1200, 1500, 3600], None, np.arange(1, 2401))
    for at_least in (False, True):
        values = {mean_max_power(power, durations, at_least=at_least).loc[1200]
                  for durations in lists}
        assert max(values) - min(values) < 1e-9 * max(values)
    exact = mean_max_power(power, np.arange(1200, 2400))
    assert mean_max_power(power, [1200]).loc[1200] == exact.loc[1200]
    at_least = mean_max_power(power, [1200], at_least=True).loc[1200]
    assert at_least == pytest.approx(exact.max(), rel=1e-12)  # lengths 1200-2399 hold it


def test_mean_max_of_the_real_ride(long_ride_as_read):
    ride = long_ride_as_read.copy()
    curve = mean_max_power(ride["power_w"])
    assert curve.loc[1] == ride["power_w"].max()
    assert curve.index.max() == len(to_1hz(ride["power_w"]))
    envelope = mean_max_power(ride["power_w"], at_least=True)
    assert (np.diff(envelope.to_numpy()) <= 0).all() and (envelope >= curve).all()
    chosen = mean_max_power(ride["power_w"], durations_s=[1, 300, 1200])
    assert chosen.index.tolist() == [1, 300, 1200]
    assert 150 < chosen.loc[1200] < chosen.loc[300] < chosen.loc[1]


def test_two_parameter_cp_recovers_a_hyperbola():
    # Monod & Scherrer: P = CP + W'/t. With CP 250 W and W' 20 kJ the fit must be exact.
    durations = np.arange(60, 1801, 30)
    curve = pd.Series(250 + 20_000 / durations, index=durations)
    fit = critical_power(curve, model="2p")
    assert fit.cp_w == pytest.approx(250.0)
    assert fit.w_prime_j == pytest.approx(20_000.0)
    assert fit.p_max_w is None
    assert fit.rmse_w == pytest.approx(0.0, abs=1e-6)
    # A rider's test results as a dict (was AttributeError: 'dict' object has no 'index').
    tests = {180: 250 + 20_000 / 180, 720: 250 + 20_000 / 720, 1200: 250 + 20_000 / 1200}
    assert critical_power(tests, durations_s=list(tests)).cp_w == pytest.approx(250.0)


def test_three_parameter_cp_recovers_mortons_curve():
    # Morton 1996: t = W'/(P - CP) - W'/(Pmax - CP)  =>  P = CP + W'/(t + W'/(Pmax - CP)).
    cp, w_prime, p_max = 280.0, 18_000.0, 1100.0
    durations = np.arange(1, 1201)
    curve = pd.Series(cp + w_prime / (durations + w_prime / (p_max - cp)), index=durations)
    fit = critical_power(curve, model="3p")
    assert fit.cp_w == pytest.approx(cp, rel=1e-3)
    assert fit.w_prime_j == pytest.approx(w_prime, rel=1e-3)
    assert fit.p_max_w == pytest.approx(p_max, rel=1e-3)
    assert fit.predict(1.0e9) == pytest.approx(cp, rel=1e-3)


def test_critical_power_needs_points_in_range():
    with pytest.raises(ValueError, match="at least 3"):
        critical_power(pd.Series([500.0, 400.0], index=[5, 10]))
    with pytest.raises(ValueError, match="at least 3"):
        critical_power(pd.Series([500.0, 400.0, 300.0], index=[5, 10, 20]), min_s=180)


def test_mean_max_default_durations_include_the_standard_test_durations():
    curve = mean_max_power(np.full(4000, 200.0))
    assert {1, 5, 60, 180, 300, 720, 1200, 3600} <= set(curve.index)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_cp_fits_recover_the_synthetic_riders_cp_and_w_prime(seed):
    # The synthetic ride hides CP 260 W and W' 20 kJ (Morton's model, Pmax 1000 W) in all-out
    # efforts of 10 s, 1, 3, 5, 12 and 20 min; fitting every point of the curve instead of the
    # default durations returned a W' a third too low.
    curve = mean_max_power(synthetic_ride(duration_s=3 * 3600, seed=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plausible efforts: no warning
        three = critical_power(curve, model="3p")
        two = critical_power(curve, model="2p")
    assert three.cp_w == pytest.approx(260, rel=0.03)
    assert three.w_prime_j == pytest.approx(20_000, rel=0.20)
    assert two.cp_w == pytest.approx(260, rel=0.03)
    assert two.w_prime_j == pytest.approx(20_000, rel=0.30)
    assert three.cp_w <= curve.loc[1200]


def test_cp_above_the_best_20_minutes_or_implausible_w_prime_warns():
    # Short efforts all-out, the long ones not: the fitted CP ends above the 20-min best.
    curve = pd.Series([700.0, 420.0, 400.0, 390.0, 300.0], index=[60, 180, 300, 720, 1200])
    with pytest.warns(ImplausibleFitWarning, match="above the best 20-min power 300 W"):
        critical_power(curve, model="2p", durations_s=[180, 300, 720])
    flat = pd.Series(250 + 1_000 / np.array([180.0, 300, 720, 1200]), index=[180, 300, 720, 1200])
    with pytest.warns(ImplausibleFitWarning, match="W' 1.0 kJ is outside"):
        critical_power(flat, model="2p")


def test_skiba_tau():
    # Skiba et al. 2012: tau = 546 e^(-0.01 D_CP) + 316; recovering just under CP gives 862 s.
    assert skiba_tau_s([400.0, 300.0 - 1e-9], cp_w=300.0) == pytest.approx(862.0, abs=1e-6)
    # Recovery at 200 W under CP 250: D_CP 50 -> 546 e^-0.5 + 316 = 647.16 s.
    assert skiba_tau_s([200.0, 400.0, 200.0], cp_w=250.0) == pytest.approx(
        546 * math.exp(-0.5) + 316
    )
    # No sample below CP: recovery power is taken as 0 W (as sweatpy does), D_CP = CP.
    assert skiba_tau_s([400.0], cp_w=250.0) == pytest.approx(546 * math.exp(-2.5) + 316)


def test_w_prime_balance_integral_matches_skibas_sum():
    # Skiba 2012: W'bal(t) = W' - sum_{u<=t} max(P(u) - CP, 0) e^{-(t-u)/tau}, written as a
    # direct double sum. 60 s at CP + 100 W then 120 s at 0 W: D_CP = 250 W.
    cp, w_prime = 250.0, 20_000.0
    power = np.concatenate([np.full(60, 350.0), np.zeros(120)])
    tau = 546 * math.exp(-0.01 * 250) + 316
    t = np.arange(power.size)
    kernel = np.exp(-(t[:, None] - t[None, :]) / tau) * (t[:, None] >= t[None, :])
    expected = w_prime - kernel @ np.clip(power - cp, 0, None)
    result = w_prime_balance(power, cp, w_prime, method="integral")
    np.testing.assert_allclose(result.to_numpy(), expected, rtol=1e-10)
    assert result.min() == pytest.approx(expected[59])


def test_w_prime_balance_differential_exact_steps():
    # Skiba 2015 differential form: above CP W' drains 1:1 (60 s x 100 W = 6 kJ); below CP the
    # deficit decays as exp(-(CP - P) t / W'): at 0 W for 60 s, 6000 e^(-250*60/20000) remains.
    cp, w_prime = 250.0, 20_000.0
    power = np.concatenate([np.full(60, 350.0), np.zeros(60)])
    result = w_prime_balance(power, cp, w_prime, method="differential")
    assert result.iloc[59] == pytest.approx(w_prime - 6000.0)
    assert result.iloc[-1] == pytest.approx(w_prime - 6000.0 * math.exp(-250 * 60 / 20_000))


def test_w_prime_balance_rejects_bad_arguments_by_name():
    with pytest.raises(ValueError, match="method"):
        w_prime_balance([300.0], 250.0, 20_000.0, method="bogus")
    for tau in (0.0, -5.0):
        with pytest.raises(ValueError, match="tau_s must be positive"):
            w_prime_balance([300.0], 250.0, 20_000.0, tau_s=tau)
    with pytest.raises(ValueError, match="w_prime_j must be positive"):
        w_prime_balance([300.0], 250.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    power=power_arrays,
    cp=st.floats(min_value=100, max_value=400),
    w_prime=st.floats(min_value=5_000, max_value=40_000),
    method=st.sampled_from(["integral", "differential"]),
)
def test_w_prime_balance_never_exceeds_w_prime(power, cp, w_prime, method):
    balance = w_prime_balance(power, cp, w_prime, method=method)
    assert (balance.to_numpy() <= w_prime + 1e-9).all()


def test_power_zones_coggan_levels():
    zones = power_zones(300.0)
    assert zones["lower_w"].tolist() == pytest.approx([0, 165, 228, 273, 318, 363, 453])
