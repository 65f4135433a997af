"""Time that runs backwards or repeats (sportlab.clock): derived variants of real recordings
with a clock jump back, repeated timestamps and shuffled GPX points, handled as documented."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from sportlab import read_activity, summarize_session
from sportlab.clock import ClockWarning, repair_clock
from sportlab.metrics import (
    elevation_gain,
    mean_max_power,
    moving_time_s,
    time_in_zones,
    weighted_power,
)
from sportlab.metrics.hr import hr_zones

SMALL_TCX = "activity_5039744860.tcx"  # Garmin, 96 samples with power, 5 laps
SMALL_GPX = "activity_5039744860.gpx"  # the same ride as GPX
LONG_RIDE = "4078723797.fit"
TIME = re.compile(r"<Time>([^<]+)</Time>")


def shift_times(text, change):
    """The TCX text with each trackpoint time (in file order) replaced by change(i, time)."""
    counter = iter(range(10**6))

    def replace(match):
        i = next(counter)
        time = pd.Timestamp(match.group(1))
        return f"<Time>{change(i, time).strftime('%Y-%m-%dT%H:%M:%S.000Z')}</Time>"

    return TIME.sub(replace, text)


@pytest.fixture
def tcx_text(activities):
    return (activities / SMALL_TCX).read_text(encoding="utf-8")


def test_the_real_files_have_no_clock_problem_to_report(activities):
    # TCX repeats each lap's boundary point exactly: one sample, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClockWarning)
        for name in (SMALL_TCX, SMALL_GPX, LONG_RIDE):
            assert read_activity(activities / name).index.is_monotonic_increasing


def test_a_clock_jump_back_keeps_the_recorded_order_and_loses_no_riding(activities, tcx_text,
                                                                        tmp_path):
    original = read_activity(activities / SMALL_TCX)
    # From the 60th trackpoint on, the head unit's clock was corrected an hour back.
    jumped = shift_times(tcx_text, lambda i, t: t - pd.Timedelta(hours=1) if i >= 60 else t)
    path = tmp_path / "jumped.tcx"
    path.write_text(jumped, encoding="utf-8")
    with pytest.warns(ClockWarning, match=r"jumped.tcx: the clock jumps back 1 time\(s\) \(3599 s"):
        ride = read_activity(path)
    assert len(ride) == len(original)
    assert ride.index.is_monotonic_increasing
    # The samples keep their order and values; the elapsed time is the original's.
    np.testing.assert_array_equal(ride["power_w"].to_numpy(), original["power_w"].to_numpy())
    assert moving_time_s(ride) == moving_time_s(original)
    assert ride.index[-1] == original.index[-1] - pd.Timedelta(hours=1)  # corrected clock stands
    assert weighted_power(ride) == pytest.approx(weighted_power(original))
    # Sorting by time instead would have put the last samples an hour before the first.
    naive = original.copy()
    naive.index = naive.index.where(np.arange(len(naive)) < 59, naive.index - pd.Timedelta("1h"))
    sorted_power = naive.sort_index()["power_w"].to_numpy()
    assert not np.array_equal(sorted_power, original["power_w"].to_numpy())
    # The session row, what the squad and the Coach show, is the original's but for the clock.
    with pytest.warns(ClockWarning):
        row = summarize_session(path).to_dict()
    expected = summarize_session(activities / SMALL_TCX).to_dict()
    for field in ("file", "start", "date"):
        row.pop(field), expected.pop(field)
    assert row == expected


def test_repeated_timestamps_with_other_values_are_averaged_with_a_warning(tcx_text, tmp_path,
                                                                          activities):
    original = read_activity(activities / SMALL_TCX)
    # Trackpoints 30-33 all carry the time of trackpoint 30 (a stalled clock).
    times = [pd.Timestamp(t) for t in TIME.findall(tcx_text)]
    stalled = shift_times(tcx_text, lambda i, t: times[30] if 30 <= i <= 33 else t)
    path = tmp_path / "stalled.tcx"
    path.write_text(stalled, encoding="utf-8")
    with pytest.warns(ClockWarning, match=r"3 sample\(s\) repeat a timestamp with other values"):
        ride = read_activity(path)
    assert ride.index.is_unique and len(ride) == len(original) - 3
    at = pd.Timestamp(times[30]).tz_convert("UTC") if times[30].tzinfo else times[30]
    expected = original["power_w"].loc[original.index[original.index >= at][:4]].mean()
    assert ride["power_w"].loc[at] == pytest.approx(expected)


def test_shuffled_gpx_points_are_read_as_the_original(activities, tmp_path):
    text = (activities / SMALL_GPX).read_text(encoding="utf-8")
    start, end = text.index("<trkpt"), text.rindex("</trkpt>") + len("</trkpt>")
    points = re.findall(r"<trkpt.*?</trkpt>", text[start:end], flags=re.DOTALL)
    assert len(points) == 96
    order = np.random.default_rng(3).permutation(len(points))
    shuffled = text[:start] + "\n".join(points[i] for i in order) + text[end:]
    path = tmp_path / "shuffled.gpx"
    path.write_text(shuffled, encoding="utf-8")
    with pytest.warns(ClockWarning, match="shuffled.gpx: .* out of time order: sorted by time"):
        ride = read_activity(path)
    pd.testing.assert_frame_equal(ride, read_activity(activities / SMALL_GPX))


@pytest.fixture(scope="module")
def long_ride(long_ride_as_read):
    return long_ride_as_read.copy()


def test_a_shuffled_series_given_to_a_metric_is_sorted_with_a_warning(long_ride):
    power, hr = long_ride["power_w"], long_ride["heart_rate_bpm"]
    order = np.random.default_rng(5).permutation(len(power))
    with pytest.warns(ClockWarning, match="timestamps go backwards"):
        assert weighted_power(power.iloc[order]) == weighted_power(power)
    with pytest.warns(ClockWarning):
        assert mean_max_power(power.iloc[order], [60]).equals(mean_max_power(power, [60]))
    with pytest.warns(ClockWarning):
        assert moving_time_s(power.iloc[order]) == moving_time_s(power)
    zones = hr_zones("hrmax", hr_max=195)
    with pytest.warns(ClockWarning):
        assert time_in_zones(hr.iloc[order], zones).equals(time_in_zones(hr, zones))
    with pytest.warns(ClockWarning):  # walked in row order, it climbed 445 km, silently
        assert elevation_gain(long_ride["altitude_m"].iloc[order]) == elevation_gain(
            long_ride["altitude_m"])
    with pytest.warns(ClockWarning):
        row = summarize_session(long_ride.iloc[order], name=LONG_RIDE)
    assert row.duration_s == summarize_session(long_ride, name=LONG_RIDE).duration_s


def test_repair_clock_keeps_units_zones_and_a_clean_frame():
    index = pd.date_range("2026-03-01 08:00", periods=5, freq="s", tz="Europe/Berlin", unit="ms")
    frame = pd.DataFrame({"power_w": [1.0, 2, 3, 4, 5]}, index=index)
    assert repair_clock(frame) is frame
    index = index[[0, 1, 2]].append(index[[0, 1]] - pd.Timedelta("10min"))
    with pytest.warns(ClockWarning, match="602 s"):
        fixed = repair_clock(pd.DataFrame({"power_w": [1.0, 2, 3, 4, 5]}, index=index))
    assert fixed.index.tz == index.tz and fixed.index.unit == index.unit
    assert (np.diff(fixed.index.asi8) == pd.Timedelta("1s") // pd.Timedelta(1, index.unit)).all()
    assert fixed.index[-1] == index[-1]
    with pytest.raises(ValueError, match="order must be"):
        repair_clock(frame, order="other")
