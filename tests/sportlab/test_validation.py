"""Bad arguments raise a ValueError that names the argument, never inf, NaN or a pandas error."""

import numpy as np
import pandas as pd
import pytest

from sportlab.metrics import (
    banister_performance,
    fit_banister,
    hr_zones,
    race_time_s,
    trimp,
    vdot,
    w_prime_balance,
)


@pytest.mark.parametrize("tau_s", [0.0, -30.0])
def test_w_prime_balance_tau(tau_s):
    with pytest.raises(ValueError, match="tau_s must be positive"):
        w_prime_balance(np.full(60, 300.0), 250.0, 20_000.0, tau_s=tau_s)


@pytest.mark.parametrize("hr_max", [60.0, 50.0])
def test_heart_rate_reserve_needs_hr_max_above_hr_rest(hr_max):
    with pytest.raises(ValueError, match="hr_max must be above hr_rest"):
        trimp(60, 140, hr_rest=60, hr_max=hr_max)
    with pytest.raises(ValueError, match="hr_max must be above hr_rest"):
        hr_zones("karvonen", hr_max=hr_max, hr_rest=60)


@pytest.mark.parametrize(("distance_m", "time_s", "name"), [
    (5000, 0, "time_s"), (5000, -60, "time_s"), (0, 1200, "distance_m"), (-5, 1200, "distance_m"),
])
def test_vdot_needs_positive_distance_and_time(distance_m, time_s, name):
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        vdot(distance_m, time_s)


def test_race_time_needs_a_positive_vdot():
    for value in (0.0, -10.0):
        with pytest.raises(ValueError, match="vdot_value must be positive"):
            race_time_s(value, 5000)


def test_banister_needs_load_and_positive_time_constants():
    with pytest.raises(ValueError, match="load is empty"):
        banister_performance([], p0=250, k1=1, k2=2, tau1=42, tau2=7)
    with pytest.raises(ValueError, match="tau2 must be a positive"):
        banister_performance([100.0] * 10, p0=250, k1=1, k2=2, tau1=42, tau2=0)
    with pytest.raises(ValueError, match="load is empty"):
        fit_banister([], pd.Series(dtype="float64"))


def _ride_with_a_dropout(seconds=30):
    power = pd.Series(np.full(600, 250.0),
                      index=pd.date_range("2026-03-01", periods=600, freq="s", tz="UTC"))
    power.iloc[200:200 + seconds] = np.nan
    return power


def test_the_dropout_error_names_an_argument_every_resampling_function_takes():
    from sportlab.metrics import mean_max_power, to_1hz, weighted_power
    from sportlab.metrics.power import skiba_tau_s

    power = _ride_with_a_dropout()
    calls = {
        "to_1hz": lambda **kw: to_1hz(power, **kw),
        "weighted_power": lambda **kw: weighted_power(power, **kw),
        "mean_max_power": lambda **kw: mean_max_power(power, [60], **kw),
        "w_prime_balance": lambda **kw: w_prime_balance(power, 250.0, 20_000.0, **kw),
        "skiba_tau_s": lambda **kw: skiba_tau_s(power, 250.0, **kw),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"pass a larger max_dropout_s=") as error:
            call()
        assert "30 s" in str(error.value), name
        call(max_dropout_s=30)  # what the message says to do works
        call(max_dropout_s=30, pause_gap_s=20)


def test_heart_rate_functions_take_the_same_gap_arguments():
    from sportlab.metrics import time_in_zones, trimp_edwards, trimp_lucia

    hr = _ride_with_a_dropout().rename("heart_rate_bpm") * 0 + 150
    hr.iloc[200:230] = np.nan
    zones = hr_zones("hrmax", hr_max=190)
    # a long dropout is not counted, unless the caller bridges it
    assert time_in_zones(hr, zones).sum() == 570
    assert time_in_zones(hr, zones, max_dropout_s=30).sum() == 600
    assert trimp_edwards(hr, 190, max_dropout_s=30) == pytest.approx(600 / 60 * 3)
    assert trimp_lucia(hr, 140, 170, max_dropout_s=30, pause_gap_s=20) == pytest.approx(20)
