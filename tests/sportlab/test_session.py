"""summarize_session: one row per recording, the same numbers as sportlab's own functions."""

import json

import pytest

from sportlab import read_activity, read_sessions, summarize_session
from sportlab.athlete import Profile, Threshold
from sportlab.metrics import (
    hr_zones,
    intensity,
    mean_max_power,
    moving_time_s,
    stress_score,
    time_in_zones,
    trimp_edwards,
    weighted_power,
)

RIDE = "2020-06-01-16-52-40.fit"


def test_a_ride_with_power_and_heart_rate_gives_every_field(activities):
    frame = read_activity(activities / RIDE)
    profile = Profile(hr_max_bpm=Threshold(190.0), ftp_w=Threshold(250.0))
    row = summarize_session(activities / RIDE, profile)
    wp = weighted_power(frame)
    moving = moving_time_s(frame)
    assert row.file == RIDE and row.start == frame.index[0].to_pydatetime()
    assert row.sport == read_sessions(activities / RIDE)["sport"].iloc[0]
    assert row.duration_s == (frame.index[-1] - frame.index[0]).total_seconds()
    assert row.moving_time_s == moving and row.distance_m == frame["distance_m"].max()
    assert row.weighted_power_w == wp
    assert row.intensity == pytest.approx(intensity(wp, 250.0))
    assert row.stress_score == pytest.approx(stress_score(moving, wp, 250.0))
    assert row.trimp_edwards == trimp_edwards(frame["heart_rate_bpm"], 190.0)
    zones = time_in_zones(frame["heart_rate_bpm"], hr_zones("hrmax", hr_max=190.0))
    assert row.time_in_hr_zones_s == dict(zones.items())
    assert sum(row.time_in_power_zones_s.values()) > 0
    best = mean_max_power(frame, [5, 60, 300, 1200])
    assert row.best_power_w == {int(d): w for d, w in best.items()}
    assert row.thresholds == {"hr_max_bpm": profile.hr_max_bpm, "ftp_w": profile.ftp_w}
    assert row.problems == []
    json.dumps(row.to_dict())  # the squad service sends it as JSON


def test_without_a_profile_the_estimate_is_named_and_no_ftp_means_no_stress_score(activities):
    row = summarize_session(activities / RIDE)
    assert row.thresholds["hr_max_bpm"] == Threshold(
        row.max_hr_bpm, None, "estimate: highest heart rate in this recording")
    assert "ftp_w" not in row.thresholds
    assert row.intensity is None and row.stress_score is None and row.time_in_power_zones_s == {}
    assert row.weighted_power_w is not None


def test_a_gpx_without_power_gives_heart_rate_and_distance(activities):
    path = next(p for p in sorted(activities.glob("*.gpx"))
                if "heart_rate_bpm" in (columns := read_activity(p).columns)
                and "power_w" not in columns)
    row = summarize_session(path, Profile(hr_max_bpm=Threshold(185.0), ftp_w=Threshold(250.0)))
    assert row.weighted_power_w is None and row.stress_score is None
    assert row.distance_m > 0 and row.trimp_edwards > 0


def test_a_long_power_dropout_is_named_and_the_rest_of_the_row_given(activities):
    frame = read_activity(activities / RIDE)
    frame.iloc[20:50, frame.columns.get_loc("power_w")] = float("nan")  # 30 s mid-ride
    row = summarize_session(frame, name="dropout.fit")
    assert row.weighted_power_w is None
    assert row.problems and "max_dropout_s" in row.problems[0]
    assert row.trimp_edwards is not None and row.file == "dropout.fit"


def test_the_dropout_problem_names_an_argument_summarize_session_takes(activities):
    # The problem says "pass a larger max_dropout_s="; summarize_session did not take it.
    frame = read_activity(activities / RIDE)
    frame.iloc[20:50, frame.columns.get_loc("power_w")] = float("nan")  # 30 s mid-ride
    assert "max_dropout_s" in summarize_session(frame).problems[0]
    row = summarize_session(frame, max_dropout_s=60)
    assert row.problems == [] and row.weighted_power_w == weighted_power(frame, max_dropout_s=60)
    assert row.best_power_w == {
        int(d): w for d, w in mean_max_power(frame, [5, 60, 300, 1200], max_dropout_s=60).items()}


def _smart_recording(frame, longest_s=8):
    # What "smart recording" head units store: a sample when the heart rate changes, and at
    # least every longest_s seconds; the timestamps say how long each sample stands for.
    hr = frame["heart_rate_bpm"].to_numpy()
    keep, last = [], None
    for i, value in enumerate(hr):
        if last is None or value != hr[last] or i - last >= longest_s:
            keep.append(i)
            last = i
    return frame.iloc[keep]


def test_average_heart_rate_is_over_time_not_over_samples(activities, long_ride_as_read):
    # 4078723797.fit: the head unit's average is 165 bpm. Its smart-recorded variant (29 % of
    # the samples) averaged 160.4 bpm over samples, 2.8 % low: steady stretches, one sample
    # per 8 s, weighed as little as the changing ones.
    name = "4078723797.fit"
    head_unit = read_sessions(activities / name)["avg_heart_rate_bpm"].iloc[0]
    full = summarize_session(activities / name)
    smart = summarize_session(_smart_recording(long_ride_as_read.copy()), name=name)
    assert full.avg_hr_bpm == pytest.approx(head_unit, rel=0.01)
    assert smart.avg_hr_bpm == pytest.approx(head_unit, rel=0.01)
    assert smart.avg_hr_bpm == pytest.approx(full.avg_hr_bpm, rel=0.002)
