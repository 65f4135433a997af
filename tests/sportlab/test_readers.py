"""read_activity on real recordings: sweat 0.25.0's example data (see recordings.py)."""

import os

import numpy as np
import pandas as pd
import pytest

from sportlab import ActivityReadError, read_activity
from sportlab.readers import cumulative_distance_m


def test_long_fit_ride_is_2h19_at_1hz_with_power_and_hr(activities):
    ride = read_activity(activities / "4078723797.fit")
    assert isinstance(ride.index, pd.DatetimeIndex)
    assert str(ride.index.tz) == "UTC"
    assert ride.index[0] == pd.Timestamp("2019-09-20 14:10:03", tz="UTC")
    duration = ride.index[-1] - ride.index[0]
    assert pd.Timedelta("2h18min") < duration < pd.Timedelta("2h20min")
    steps = ride.index.to_series().diff().dt.total_seconds().dropna()
    assert steps.median() == 1.0
    assert (steps == 1.0).mean() > 0.99
    assert ride.index.is_monotonic_increasing and ride.index.is_unique
    for column in ("power_w", "heart_rate_bpm", "cadence_rpm", "speed_m_s", "distance_m"):
        assert column in ride, column
    assert ride["power_w"].max() > 400  # a road ride with real efforts
    assert 60 < ride["heart_rate_bpm"].mean() < 200
    # Semicircles converted to degrees: the ride is in the Belgian/Dutch Limburg area.
    assert ride["latitude_deg"].between(50, 51.5).all()
    assert ride["longitude_deg"].between(5, 6.5).all()
    # Distance is monotone and of road-ride size (the device total, in metres).
    assert ride["distance_m"].is_monotonic_increasing
    assert 50_000 < ride["distance_m"].iloc[-1] < 65_000


def test_fit_without_gps_or_power_only_has_the_recorded_columns(activities):
    hr_only = read_activity(activities / "4801048867.fit")
    assert "power_w" not in hr_only
    assert "heart_rate_bpm" in hr_only
    indoor = read_activity(activities / "6449921903_ACTIVITY.fit")
    assert "latitude_deg" not in indoor
    assert {"power_w", "heart_rate_bpm", "cadence_rpm"} <= set(indoor.columns)


def test_pauses_stay_as_gaps(activities):
    # index.yml: "a pause in the middle"; the timer stopped 14:53:33 and restarted 14:54:05.
    ride = read_activity(activities / "2020-06-01-16-52-40.fit")
    steps = ride.index.to_series().diff().dt.total_seconds()
    assert steps.max() == 32.0
    assert len(ride) == 96


def test_gpx_and_tcx_exports_of_one_activity_agree(activities):
    gpx = read_activity(activities / "activity_5039744860.gpx")
    tcx = read_activity(activities / "activity_5039744860.tcx")
    assert gpx.index[0] == tcx.index[0]
    assert gpx.index[-1] - gpx.index[0] == tcx.index[-1] - tcx.index[0] == pd.Timedelta("126s")
    # TCX repeats each lap's boundary point; after de-duplication both have the same samples.
    assert gpx.index.equals(tcx.index)
    pd.testing.assert_series_equal(gpx["heart_rate_bpm"], tcx["heart_rate_bpm"])
    # GPX has no distance channel: the haversine track (pause excluded) must match the device's.
    gpx_m = gpx["distance_m"].iloc[-1]
    tcx_m = tcx["distance_m"].iloc[-1] - tcx["distance_m"].iloc[0]
    assert gpx_m == pytest.approx(tcx_m, rel=0.02)


def test_fit_and_tcx_of_one_activity_agree_on_power(activities):
    fit = read_activity(activities / "2020-06-01-16-52-40.fit")
    tcx = read_activity(activities / "activity_5039744860.tcx")
    pd.testing.assert_series_equal(fit["power_w"], tcx["power_w"])
    np.testing.assert_allclose(fit["latitude_deg"], tcx["latitude_deg"], atol=1e-6)


def test_haversine_one_degree_of_latitude():
    # One degree along a meridian on the mean-radius sphere: 2*pi*6371008.8/360 = 111195.08 m.
    distance = cumulative_distance_m(np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    assert distance[-1] == pytest.approx(111_195.08, abs=0.01)


def test_random_bytes_fit_raises_clear_error(tmp_path):
    bad = tmp_path / "garbage.fit"
    bad.write_bytes(os.urandom(2048))
    with pytest.raises(ActivityReadError, match=r"garbage\.fit"):
        read_activity(bad)


def test_truncated_gpx_raises_clear_error(tmp_path, activities):
    text = (activities / "activity_5039744860.gpx").read_text(encoding="utf-8")
    bad = tmp_path / "cut.gpx"
    bad.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ActivityReadError, match=r"cut\.gpx"):
        read_activity(bad)


def test_truncated_fit_raises_clear_error(tmp_path, activities):
    data = (activities / "2020-06-01-16-52-40.fit").read_bytes()
    bad = tmp_path / "cut.fit"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ActivityReadError, match=r"cut\.fit"):
        read_activity(bad)


def test_unknown_extension_and_missing_file(tmp_path):
    other = tmp_path / "ride.csv"
    other.write_text("time,power\n", encoding="utf-8")
    with pytest.raises(ActivityReadError, match=r"unknown file type '\.csv'"):
        read_activity(other)
    with pytest.raises(ActivityReadError, match="does not exist"):
        read_activity(tmp_path / "nowhere.fit")


def test_gpx_without_points_is_an_error(tmp_path):
    empty = tmp_path / "empty.gpx"
    empty.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t" '
        'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg/></trk></gpx>',
        encoding="utf-8",
    )
    with pytest.raises(ActivityReadError, match="no timestamped samples"):
        read_activity(empty)


def test_truncated_tcx_raises_clear_error(tmp_path, activities):
    text = (activities / "activity_5039744860.tcx").read_text(encoding="utf-8")
    bad = tmp_path / "cut.tcx"
    bad.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ActivityReadError, match=r"cut\.tcx"):
        read_activity(bad)
