"""Bad samples are never averaged in: negative, infinite and inhuman values become gaps (with a
named warning) or a named error, on synthetic series and on derived variants of a real ride."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from sportlab import read_activity, summarize_session
from sportlab.metrics import (
    acwr,
    banister_performance,
    critical_power,
    hr_zones,
    hrv_readiness,
    intensity,
    mean_max_power,
    monotony,
    pmc,
    power_zones,
    race_time_s,
    rmssd,
    skiba_tau_s,
    strain,
    stress_score,
    time_in_zones,
    to_1hz,
    trimp,
    trimp_edwards,
    trimp_lucia,
    vdot,
    w_prime_balance,
    weighted_power,
)
from sportlab.metrics.running import grade_adjusted_pace, minetti_energy_cost
from sportlab.plausible import (
    BOUNDS,
    ImplausibleSampleError,
    ImplausibleSampleWarning,
    clean,
    clean_frame,
)

START = pd.Timestamp("2026-03-01 08:00:00", tz="UTC")
LONG_RIDE = "4078723797.fit"  # Garmin Edge 1000, 1 Hz, 2 h 19 min, no pauses


def timed(values):
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=START + pd.to_timedelta(np.arange(values.size), unit="s"))


def test_sixty_seconds_at_minus_fifty_watts_is_a_named_dropout_not_plus_fifty():
    # The case: 60 s at -50 W had a weighted power of +50 W (the 4th power of -50).
    with (pytest.warns(ImplausibleSampleWarning, match=r"60 sample\(s\) of power_w are below 0"),
          pytest.raises(ValueError, match=r"no valid value at all .* implausible")):
        weighted_power(timed(np.full(60, -50.0)))
    inside = timed(np.concatenate([np.full(100, 200.0), np.full(60, -50.0), np.full(100, 200.0)]))
    with (pytest.warns(ImplausibleSampleWarning),
          pytest.raises(ValueError, match="power_w has no value for 60 s")):
        weighted_power(inside)
    ride = timed(np.concatenate([np.full(100, 200.0), [-50.0, -50.0], np.full(100, 200.0)]))
    with pytest.warns(ImplausibleSampleWarning):
        assert weighted_power(ride) == pytest.approx(200.0)  # 2 s bridged at 200 W, not -50


@pytest.mark.parametrize("bad", [np.inf, -np.inf, 65535.0, -1.0])
def test_infinite_and_inhuman_power_is_a_gap(bad):
    power = np.full(600, 250.0)
    power[300] = bad
    with pytest.warns(ImplausibleSampleWarning, match="power_w"):
        curve = mean_max_power(timed(power), [1, 60])
    assert curve.tolist() == [250.0, 250.0]
    with pytest.raises(ImplausibleSampleError, match="power_w"):
        clean(power, "power_w", on_implausible="raise")


def test_heart_rate_outside_what_a_heart_does_is_not_counted():
    hr = timed(np.concatenate([np.full(120, 150.0), np.full(30, 0.0), np.full(60, 300.0)]))
    with pytest.warns(ImplausibleSampleWarning, match="heart_rate_bpm"):
        zones = time_in_zones(hr, hr_zones("hrmax", hr_max=200))
    assert zones.sum() == 120  # only the 2 minutes at 150 bpm are heart beats
    with pytest.warns(ImplausibleSampleWarning):
        assert trimp_edwards(hr, hr_max=200) == pytest.approx(2 * 3)  # 75 %: zone 3, 2 min
    plain = np.array([150.0, np.inf, 150.0])
    with pytest.warns(ImplausibleSampleWarning):
        assert trimp_edwards(plain, hr_max=200) == pytest.approx(2 * 3 / 60)


def test_a_clean_channel_is_returned_as_is_without_a_warning():
    power = timed(np.linspace(0, 3000, 50))  # both bounds are accepted values
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clean(power, "power_w") is power
        assert clean(power.to_numpy(), "no such channel") is not None


def test_rr_intervals_out_of_range_break_the_sequence():
    # 60 ms is no heartbeat (1000 bpm): the pairs touching it are dropped, not squared in.
    with pytest.warns(ImplausibleSampleWarning, match="rr_ms"):
        value = rmssd([800.0, 810.0, 60.0, 820.0, 830.0])
    assert value == pytest.approx(10.0)


@pytest.mark.parametrize("call", [
    lambda: vdot(5000, np.inf),
    lambda: vdot(np.inf, 1200),
    lambda: race_time_s(np.inf, 5000),
    lambda: grade_adjusted_pace(np.inf, 0.0),
    lambda: grade_adjusted_pace(-3.0, 0.0),
    lambda: minetti_energy_cost(np.inf),
    lambda: intensity(np.inf, 250),
    lambda: intensity(250, np.inf),
    lambda: stress_score(np.inf, 250, 250),
    lambda: trimp(np.inf, 150, 50, 190),
    lambda: trimp(60, 150, 50, np.inf),
    lambda: trimp_edwards([150.0], hr_max=np.inf),
    lambda: hr_zones("hrmax", hr_max=np.inf),
])
def test_functions_taking_a_number_refuse_non_finite_ones(call):
    # vdot(5000, inf) gave -5.75 before.
    with pytest.raises(ValueError, match=r"finite|positive"):
        call()


def test_missing_samples_stay_missing_in_the_pace_functions():
    adjusted = grade_adjusted_pace(np.array([3.0, np.nan]), np.array([0.0, 0.1]))
    assert adjusted[0] == pytest.approx(3.0) and np.isnan(adjusted[1])


def test_every_bound_has_a_source_in_the_module_docstring():
    import sportlab.plausible as module

    for channel in BOUNDS:
        assert f"``{channel}``" in module.__doc__


# Derived variants of a real recording: the head unit's ride with injected bad samples.


@pytest.fixture(scope="module")
def real_ride(long_ride_as_read):
    return long_ride_as_read.copy()


def test_a_plausible_ride_is_not_copied(real_ride):
    # The check costs a min and a max per channel; a clean ride is returned as it is.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clean_frame(real_ride) is real_ride


def test_real_ride_with_injected_spikes_keeps_its_numbers(real_ride):
    reference = summarize_session(real_ride, name=LONG_RIDE)
    spiked = real_ride.copy()
    rows = np.arange(500, 8000, 500)  # 15 single-second spikes, as a corrupt record reads
    spiked.iloc[rows, spiked.columns.get_loc("power_w")] = 65535.0
    spiked.iloc[rows + 1, spiked.columns.get_loc("heart_rate_bpm")] = 255.0
    spiked.iloc[rows + 2, spiked.columns.get_loc("power_w")] = -np.inf
    with pytest.warns(ImplausibleSampleWarning) as caught:
        row = summarize_session(spiked, name=LONG_RIDE)
    assert {"power_w", "heart_rate_bpm"} <= {
        channel for w in caught for channel in BOUNDS if channel in str(w.message)}
    assert row.max_power_w == reference.max_power_w
    assert row.max_hr_bpm == reference.max_hr_bpm
    assert row.weighted_power_w == pytest.approx(reference.weighted_power_w, rel=0.005)
    assert row.avg_power_w == pytest.approx(reference.avg_power_w, rel=0.005)
    assert row.best_power_w[5] == pytest.approx(reference.best_power_w[5], rel=0.05)
    # Unchecked, one 65535-W second put the best 5 s above 13 kW.
    assert row.best_power_w[5] < BOUNDS["power_w"][1]


def test_real_ride_written_with_bad_samples_is_cleaned_when_read(real_ride, tmp_path):
    # A GPX with an inhuman heart rate and a negative power: the reader warns and leaves gaps.
    from sportlab.readers import _read_gpx  # noqa: F401  (the reader under test)

    points = real_ride.iloc[:120]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">',
             "<trk><trkseg>"]
    for i, (time, sample) in enumerate(points.iterrows()):
        hr = 400 if i == 50 else int(sample["heart_rate_bpm"])
        power = -80 if i == 60 else int(sample["power_w"])
        lines.append(
            f'<trkpt lat="{sample["latitude_deg"]}" lon="{sample["longitude_deg"]}">'
            f"<time>{time.strftime('%Y-%m-%dT%H:%M:%SZ')}</time><extensions><power>{power}</power>"
            f"<hr>{hr}</hr></extensions></trkpt>")
    lines.append("</trkseg></trk></gpx>")
    path = tmp_path / "bad.gpx"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.warns(ImplausibleSampleWarning) as caught:
        ride = read_activity(path)
    assert len(caught) == 2
    assert np.isnan(ride["heart_rate_bpm"].iloc[50]) and np.isnan(ride["power_w"].iloc[60])
    assert ride["power_w"].notna().sum() == 119


# Issue 22 item 2, the rest of the functions taking a number: load models, the mean-max
# durations, the weighted-power window, the HRV baseline. Each gave a number before (-500 AU
# made a week's CTL negative, inf NaN'd a season, 1.5 s read as 1 s, 0 s or -5 s vanished from
# the curve, an infinite window gave the plain mean, ln rMSSD -3 counted as a morning).
DAYS = pd.date_range("2026-01-01", periods=60, freq="D")


def _load_with(day_5):
    return pd.Series(np.where(np.arange(60) == 5, day_5, 50.0), index=DAYS)


@pytest.mark.parametrize("call", [
    lambda: pmc(_load_with(-500.0)),
    lambda: pmc(_load_with(np.inf)),
    lambda: pmc(_load_with(50.0), ctl_days=np.inf),
    lambda: pmc(_load_with(50.0), atl_days=0),
    lambda: pmc(_load_with(50.0), ctl0=np.nan),
    lambda: acwr(_load_with(np.inf)),
    lambda: acwr(_load_with(50.0), acute_days=np.inf),
    lambda: acwr(_load_with(50.0), acute_days=7, chronic_days=28.5),
    lambda: monotony(_load_with(-50.0)),
    lambda: monotony(_load_with(50.0), window_days=0),
    lambda: monotony(_load_with(50.0), window_days=1),
    lambda: strain(_load_with(np.inf)),
    lambda: mean_max_power(np.full(600, 200.0), [np.inf]),
    lambda: mean_max_power(np.full(600, 200.0), [60, 0]),
    lambda: mean_max_power(np.full(600, 200.0), [-5]),
    lambda: mean_max_power(np.full(600, 200.0), [1.5]),
    lambda: weighted_power(np.full(600, 200.0), window_s=np.inf),
    lambda: weighted_power(np.full(600, 200.0), window_s=29.5),
    lambda: hrv_readiness(pd.Series(np.full(60, 4.0), index=DAYS), swc_factor=np.inf),
])
def test_every_other_number_taking_function_refuses_by_name(call):
    with pytest.raises(ValueError, match=r"finite|positive|whole|at least|a number"):
        call()


def test_mean_max_leaves_out_only_durations_longer_than_the_ride():
    curve = mean_max_power(np.full(600, 200.0), [60, 600, 601, 3600])
    assert curve.index.tolist() == [60, 600]


def test_an_implausible_ln_rmssd_morning_is_a_missed_morning_with_a_warning():
    values = pd.Series(np.full(60, 4.0), index=DAYS)
    values.iloc[40] = -3.0  # an rMSSD of 0.05 ms: a broken recording
    with pytest.warns(ImplausibleSampleWarning, match="ln_rmssd"):
        result = hrv_readiness(values)
    assert np.isnan(result["ln_rmssd"].iloc[40])
    assert result["rolling_mean"].iloc[40] == pytest.approx(4.0)
    assert not result["below_swc"].any()


@pytest.mark.parametrize("call", [
    lambda: banister_performance(_load_with(50.0), np.inf, 1.0, 2.0, 42, 7),
    lambda: banister_performance(_load_with(50.0), 100, np.inf, 2.0, 42, 7),
    lambda: banister_performance(_load_with(50.0), 100, -1.0, 2.0, 42, 7),
    lambda: banister_performance(_load_with(50.0), 100, 1.0, 2.0, np.inf, 7),
    lambda: critical_power(pd.Series([500.0, 400, 300, 280], index=[180, 300, 720, 1200]),
                           durations_s=[np.inf, 300, 720]),
    lambda: to_1hz(np.full(60, 150.0), max_dropout_s=np.nan),
    lambda: to_1hz(np.full(60, 150.0), pause_gap_s=np.nan),
])
def test_model_parameters_and_gap_arguments_refuse_non_numbers(call):
    with pytest.raises(ValueError, match=r"finite|positive|whole"):
        call()


@pytest.mark.parametrize(("hr_avg", "hr_rest", "hr_max", "message"), [
    (250.0, 50.0, 190.0, "above hr_max"),  # gave 852 AU: 131 % of the reserve
    (150.0, 50.0, 300.0, "hr_max must be a heart rate of 25-250 bpm"),
    (150.0, 10.0, 190.0, "hr_rest must be a heart rate"),
    (np.array([150.0, 400.0]), 50.0, 190.0, "hr_avg must be a heart rate"),
])
def test_banister_trimp_refuses_heart_rates_no_heart_has(hr_avg, hr_rest, hr_max, message):
    with pytest.raises(ValueError, match=message):
        trimp(60, hr_avg, hr_rest, hr_max)


@pytest.mark.parametrize(("call", "message"), [
    # Each gave a number before: zones of 200-400 bpm, every beat in zone 5 for an HRmax of 5,
    # an intensity of 20 from a 5000-W "weighted power", W' balance against a 9000-W CP.
    (lambda: hr_zones("hrmax", hr_max=400), "hr_max must be a heart rate of 25-250 bpm"),
    (lambda: hr_zones("hrmax", hr_max=5), "hr_max must be a heart rate"),
    (lambda: hr_zones("karvonen", hr_max=190, hr_rest=300), "hr_rest must be a heart rate"),
    (lambda: hr_zones("lthr", lthr_bpm=400), "lthr_bpm must be a heart rate"),
    (lambda: trimp_edwards(np.full(600, 150.0), hr_max=400), "hr_max must be a heart rate"),
    (lambda: trimp_lucia(np.full(600, 150.0), 10, 170), "vt1_bpm must be a heart rate"),
    (lambda: trimp_lucia(np.full(600, 150.0), 140, 900), "vt2_bpm must be a heart rate"),
    (lambda: intensity(5000, 250), "weighted_power_w must be a power of 0-3000 W"),
    (lambda: intensity(250, 65535), "ftp_w must be a power"),
    (lambda: stress_score(3600, 5000, 250), "weighted_power_w must be a power"),
    (lambda: power_zones(5000), "ftp_w must be a power"),
    (lambda: w_prime_balance(np.full(60, 200.0), 9000, 20000), "cp_w must be a power"),
    (lambda: skiba_tau_s(np.full(60, 200.0), 9000), "cp_w must be a power"),
    (lambda: critical_power(pd.Series([65535.0, 300.0, 280.0, 270.0],
                                      index=[180, 300, 720, 1200])), "mean_max power must be"),
])
def test_thresholds_no_human_has_are_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_banister_trimp_keeps_a_missing_session_missing():
    assert np.isnan(trimp(60, np.nan, 50, 190))
    assert trimp(60, 40, 50, 190) == 0.0  # below rest: no load, as documented


def test_a_speed_no_runner_reaches_is_missing_in_grade_adjusted_pace():
    with pytest.warns(ImplausibleSampleWarning, match="speed_m_s"):
        adjusted = grade_adjusted_pace(np.array([3.0, 100.0]), np.array([0.0, 0.0]))
    assert adjusted[0] == pytest.approx(3.0) and np.isnan(adjusted[1])


# A recording's cumulative distance (issue 22 item 2): one corrupt sample was the session's
# distance (its largest value) and every pace from it; a restart or jump shifted the rest.
RUN = "3173437224.tcx"  # Polar M400, a 4.5-km run, 1 Hz, 3507 samples


def _with_distances(source, target, change, first, last=None):
    """``source`` written to ``target`` with ``change(distance, distance at first)`` applied to
    the DistanceMeters of the trackpoints ``first`` to ``last`` (inclusive; None: the end)."""
    head, *points = source.read_text(encoding="utf-8").split("<Trackpoint>")
    pattern = re.compile(r"<DistanceMeters>([^<]*)</DistanceMeters>")
    at_first = float(pattern.search(points[first]).group(1))
    last = len(points) - 1 if last is None else last
    for i in range(first, last + 1):
        points[i] = pattern.sub(
            lambda m: f"<DistanceMeters>{change(float(m.group(1)), at_first)!r}</DistanceMeters>",
            points[i], count=1)
    target.write_text("<Trackpoint>".join([head, *points]), encoding="utf-8")
    return target


def _pace_s_per_km(row):
    return row.moving_time_s / (row.distance_m / 1000.0)


@pytest.fixture(scope="module")
def run_reference(activities):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImplausibleSampleWarning)  # the real run is plausible
        return summarize_session(activities / RUN)


@pytest.mark.parametrize(("change", "first", "last"), [
    (lambda d, _: 1e7, 1500, 1500),  # a spike to 10 000 km: above the 7 000-km bound
    (lambda d, _: 5e6, 1500, 1500),  # 5 000 km: within the bound, but 5 000 km in a second
    (lambda d, _: -d, 1500, 1500),  # negative
    (lambda d, _: 0.0, 1500, 1500),  # one record reads 0 m
    (lambda d, _: d - 1000.0, 1500, 1500),  # one record 1 km back
    (lambda d, at: d - at, 2000, None),  # the device restarts its count at 0 m mid-run
    (lambda d, _: d + 1e6, 2000, None),  # a 1 000-km jump, counted on from there
])
def test_a_corrupt_distance_in_a_real_run_leaves_distance_and_pace_right(
        activities, run_reference, tmp_path, change, first, last):
    path = _with_distances(activities / RUN, tmp_path / RUN, change, first, last)
    with pytest.warns(ImplausibleSampleWarning, match="distance_m") as caught:
        row = summarize_session(path)
    assert len(caught) == 1 and "distance_m" in str(caught[0].message)
    # At most one step of the run (under 5 m at its pace) is not counted.
    assert row.distance_m == pytest.approx(run_reference.distance_m, abs=5.0)
    assert _pace_s_per_km(row) == pytest.approx(_pace_s_per_km(run_reference), rel=0.002)
    assert row.avg_hr_bpm == run_reference.avg_hr_bpm
    with pytest.warns(ImplausibleSampleWarning):
        distance = read_activity(path)["distance_m"].dropna()
    assert distance.is_monotonic_increasing and distance.iloc[-1] == pytest.approx(
        run_reference.distance_m, abs=5.0)
    with pytest.raises(ImplausibleSampleError, match="distance_m") as refused:
        read_activity(path, on_implausible="raise")
    assert refused.value.channel == "distance_m"


def test_a_real_ride_with_every_kind_of_corrupt_distance_keeps_its_row(real_ride):
    reference = summarize_session(real_ride, name=LONG_RIDE)
    corrupt = real_ride.copy()
    column = corrupt.columns.get_loc("distance_m")
    distance = corrupt["distance_m"].to_numpy().copy()
    distance[1000] = 1e7
    distance[2000] = 4e6
    distance[3000] = 0.0
    distance[4000] = -distance[4000]
    distance[5000:] -= distance[5000]  # the count restarts at 0 m
    distance[7000:] += 1e6  # and jumps 1 000 km
    corrupt.iloc[:, column] = distance
    with pytest.warns(ImplausibleSampleWarning, match="distance_m") as caught:
        row = summarize_session(corrupt, name=LONG_RIDE)
    message = " ".join(str(w.message) for w in caught)
    assert "2 step(s) of distance_m go backwards or faster than 75 m/s and stay" in message
    # The ride's fastest step is 19.4 m/s: two steps not counted are at most 40 m of 57.6 km.
    assert row.distance_m == pytest.approx(reference.distance_m, abs=40.0)
    assert row.distance_m <= reference.distance_m
    assert row.weighted_power_w == reference.weighted_power_w
    assert row.moving_time_s == reference.moving_time_s
    with pytest.warns(ImplausibleSampleWarning, match="distance_m"):
        cleaned = clean_frame(corrupt)
    assert cleaned["distance_m"].dropna().is_monotonic_increasing


def test_a_distance_step_is_timed_by_the_timestamps_and_a_pause_may_cover_ground():
    # 5 km across a 10-minute pause is 8.3 m/s (a car ride home), not 5 km in one sample.
    times = START + pd.to_timedelta([0, 1, 2, 602, 603], unit="s")
    distance = pd.Series([0.0, 5.0, 10.0, 5010.0, 5015.0], index=times)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clean(distance, "distance_m") is distance
    # As an array the samples are 1 s apart: the 5 km in one second count as no distance.
    with pytest.warns(ImplausibleSampleWarning, match="faster than 75 m/s and stay"):
        assert clean(distance.to_numpy(), "distance_m").tolist() == [0.0, 5.0, 10.0, 10.0, 15.0]
