"""Putting a recorded channel on a 1-s grid by its timestamps: gaps, pauses and dropouts."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sportlab.metrics import to_1hz, weighted_power
from sportlab.resample import PAUSE_GAP_S, moving_time_s, resample_1hz

START = pd.Timestamp("2026-03-01 08:00:00", tz="UTC")
watts = st.floats(min_value=0, max_value=2000, allow_nan=False)
one_hz_rides = arrays(np.float64, st.integers(1, 300), elements=watts)


def timed(seconds, values):
    return pd.Series(values, index=START + pd.to_timedelta(seconds, unit="s"), dtype="float64")


@settings(max_examples=80, deadline=None)
@given(power=one_hz_rides)
def test_resampling_a_1hz_ride_changes_nothing_and_is_idempotent(power):
    ride = timed(np.arange(power.size), power)
    once = to_1hz(ride)
    np.testing.assert_array_equal(once.to_numpy(), power)
    assert once.index.equals(ride.index)
    pd.testing.assert_series_equal(to_1hz(once), once)
    np.testing.assert_array_equal(to_1hz(power).to_numpy(), power)


@st.composite
def rides_with_a_pause(draw):
    """Smart-recorded riding (steps of 1-4 s), a pause longer than the threshold, riding."""
    steps = draw(st.lists(st.integers(1, 4), min_size=1, max_size=60))
    pause = draw(st.integers(int(PAUSE_GAP_S) + 1, 3600))
    more = draw(st.lists(st.integers(1, 4), min_size=1, max_size=60))
    first = np.concatenate([[0], np.cumsum(steps)])
    second = first[-1] + pause + np.concatenate([[0], np.cumsum(more)])
    seconds = np.concatenate([first, second])
    power = draw(arrays(np.float64, seconds.size, elements=watts))
    return seconds, power, (int(first[-1]), int(second[0]))


@settings(max_examples=80, deadline=None)
@given(ride=rides_with_a_pause())
def test_no_power_is_ever_created_during_a_pause(ride):
    seconds, power, (stopped, restarted) = ride
    grid = to_1hz(timed(seconds, power), pauses="nan")
    paused = grid.iloc[stopped + 1 : restarted]
    assert paused.isna().all()
    assert (to_1hz(timed(seconds, power)).iloc[stopped + 1 : restarted] == 0).all()
    # Between recorded samples the filled values stay within their neighbours' range.
    recorded = grid.dropna()
    assert recorded.min() >= power.min() - 1e-9 and recorded.max() <= power.max() + 1e-9
    assert len(recorded) == seconds[-1] + 1 - (restarted - stopped - 1)
    assert moving_time_s(timed(seconds, power)) == seconds[-1] - (restarted - stopped)


def test_edge_dropouts_are_not_recorded_and_interior_ones_filled():
    # The sensor reconnects 3 s after the restart: those seconds are not riding with power.
    power = timed([0, 1, 2, 30, 31, 32, 33], [100, np.nan, 300, np.nan, np.nan, 400, 400])
    grid = resample_1hz(power, name="power_w")
    assert grid.iloc[:3].tolist() == [100, 200, 300]
    assert grid.iloc[3:32].isna().all()
    assert grid.iloc[32:].tolist() == [400, 400]
    assert weighted_power(power) == pytest.approx(np.mean([100, 200, 300, 400, 400]))


def test_sub_second_samples_are_averaged_and_long_dropouts_can_be_kept_as_gaps():
    four_hz = np.repeat([100.0, 200.0, 300.0], 4)
    assert to_1hz(four_hz, sample_s=0.25).tolist() == [100, 200, 300]
    heart_rate = np.concatenate([[120.0], np.full(30, np.nan), [150.0]])
    with pytest.raises(ValueError, match="heart_rate_bpm has no value for 30 s"):
        resample_1hz(heart_rate, name="heart_rate_bpm")
    kept = resample_1hz(heart_rate, long_dropouts="nan")
    assert kept.isna().sum() == 30
    assert resample_1hz(np.full(5, np.nan)).isna().all()  # a strap never connected: nothing
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sample_s must be a positive"):
            resample_1hz([1.0, 2.0], sample_s=bad)
