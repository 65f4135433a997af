"""The synthetic team season is deterministic and physiologically plausible."""

import numpy as np
import pandas as pd
import pytest

from sportlab.datasets import team_season
from sportlab.metrics import pmc, session_rpe_load, trimp


@pytest.fixture(scope="module")
def season():
    return team_season(seed=0)


def test_same_seed_same_season_other_seed_differs(season):
    again = team_season(seed=0)
    pd.testing.assert_frame_equal(season.sessions, again.sessions)
    pd.testing.assert_frame_equal(season.wellness, again.wellness)
    other = team_season(seed=1)
    assert not other.sessions["load"].equals(season.sessions["load"])


def test_shape_12_athletes_180_days(season):
    assert season.athletes["athlete"].nunique() == 12
    assert season.wellness.groupby("athlete")["date"].nunique().eq(180).all()
    assert season.daily_load().shape == (180, 12)
    per_week = season.sessions.groupby("athlete").size() / (180 / 7)
    assert per_week.between(3, 6).all()  # 5 planned sessions a week, some missed


def test_sessions_are_internally_consistent(season):
    s = season.sessions.merge(season.athletes, on="athlete", suffixes=("", "_athlete"))
    assert (s["hr_avg_bpm"] > s["hr_rest_bpm"]).all()
    assert (s["hr_avg_bpm"] <= s["hr_max_bpm"]).all()
    assert (s["hr_max_bpm"] <= s["hr_max_bpm_athlete"]).all()
    assert s["rpe"].between(1, 10).all()
    np.testing.assert_allclose(s["load"], session_rpe_load(s["rpe"], s["duration_min"]))
    for sex in ("male", "female"):
        rows = s[s["sex"] == sex]
        expected = trimp(
            rows["duration_min"],
            rows["hr_avg_bpm"],
            rows["hr_rest_bpm"],
            rows["hr_max_bpm_athlete"],
            sex,
        )
        np.testing.assert_allclose(rows["trimp"], expected, atol=0.05)
    cyclists = s["sport"] == "cycling"
    assert s.loc[cyclists, "avg_power_w"].notna().all()
    assert s.loc[~cyclists, "avg_power_w"].isna().all()
    assert (s.loc[cyclists, "weighted_power_w"] >= s.loc[cyclists, "avg_power_w"]).all()
    w_per_kg = s.loc[cyclists, "ftp_w"] / s.loc[cyclists, "mass_kg"]
    assert w_per_kg.between(2.5, 5.5).all()


def test_hrv_falls_when_acute_load_outruns_chronic(season):
    daily = season.daily_load()
    correlations = []
    for athlete, rows in season.wellness.groupby("athlete"):
        state = pmc(daily[athlete])
        overload = (state["atl"] - state["ctl"]).to_numpy()
        correlations.append(np.corrcoef(overload, rows["ln_rmssd"].to_numpy())[0, 1])
    assert np.median(correlations) < -0.3
    np.testing.assert_allclose(
        np.log(season.wellness["rmssd_ms"]), season.wellness["ln_rmssd"], atol=0.01
    )


def test_synthetic_ride_looks_like_a_recording_and_hides_a_known_cp():
    from sportlab.datasets import synthetic_ride
    from sportlab.metrics import critical_power, mean_max_power

    ride = synthetic_ride(duration_s=3 * 3600, cp_w=260.0, w_prime_j=20_000.0, p_max_w=1000.0)
    assert str(ride.index.tz) == "UTC"
    steps = ride.index.to_series().diff().dt.total_seconds().dropna()
    assert sorted(steps.unique()) == [1.0, 181.0]  # 1 Hz with one 3-min café stop
    assert {"power_w", "heart_rate_bpm", "cadence_rpm", "speed_m_s", "distance_m"} <= set(ride)
    assert ride["distance_m"].is_monotonic_increasing
    # The maximal efforts follow Morton's curve for CP 260 W / W' 20 kJ / Pmax 1000 W.
    efforts = mean_max_power(ride["power_w"], durations_s=[10, 60, 180, 300, 720, 1200])
    fit = critical_power(efforts, model="3p")
    assert fit.cp_w == pytest.approx(260.0, rel=0.03)
    assert fit.w_prime_j == pytest.approx(20_000.0, rel=0.10)
