"""SDNN, pNN50 (Task Force 1996) against hrv-analysis, and elevation gain against gpxpy and the
head unit's stored total ascent, on worked examples and the sweat wheel's recordings."""

import fitdecode
import gpxpy
import numpy as np
import pytest
from hrvanalysis import get_time_domain_features

from sportlab import read_activity
from sportlab.metrics import elevation_gain, pnn50, rmssd, sdnn
from sportlab.metrics.terrain import ELEVATION_THRESHOLD_M
from sportlab.plausible import ImplausibleSampleWarning

RR = [800.0, 810.0, 790.0, 850.0, 800.0, 760.0, 900.0, 820.0]


def test_sdnn_and_pnn50_worked_example():
    # Mean 816.25 ms; squared deviations sum 12587.5; SDNN = sqrt(12587.5 / 7) = 42.405 ms.
    # Successive differences 10, -20, 60, -50, -40, 140, -80: three above 50 ms of 7 = 42.86 %.
    assert sdnn(RR) == pytest.approx(np.sqrt(12587.5 / 7))
    assert pnn50(RR) == pytest.approx(300 / 7)
    # Exactly 50 ms is not "more than 50 ms" (Task Force: NN50 counts differences > 50 ms).
    assert pnn50([800.0, 850.0, 800.0]) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdnn_pnn50_rmssd_match_hrv_analysis(seed):
    rng = np.random.default_rng(seed)
    # Five minutes of a resting heart with respiratory sinus arrhythmia and noise.
    beats = 360
    rr = 950 + 60 * np.sin(np.arange(beats) * 2 * np.pi / 4.5) + rng.normal(0, 25, beats)
    peer = get_time_domain_features(rr.tolist())
    assert sdnn(rr) == pytest.approx(peer["sdnn"], rel=1e-9)
    assert pnn50(rr) == pytest.approx(peer["pnni_50"], rel=1e-9)
    assert rmssd(rr) == pytest.approx(peer["rmssd"], rel=1e-9)


def test_a_missed_or_implausible_beat_is_left_out():
    with_gap = [*RR[:4], np.nan, *RR[4:]]
    assert sdnn(with_gap) == pytest.approx(sdnn(RR))
    # The NaN breaks the sequence: 850 -> 800 is no longer a successive pair (|-50| not > 50
    # anyway), so the differences are 10, -20, 60, -40, 140, -80: 3 of 6.
    assert pnn50(with_gap) == pytest.approx(50.0)
    with pytest.warns(ImplausibleSampleWarning, match="rr_ms"):
        assert sdnn([*RR, 5000.0]) == pytest.approx(sdnn(RR))
    with pytest.raises(ValueError, match="SDNN"):
        sdnn([800.0])
    with pytest.raises(ValueError, match="pNN50"):
        pnn50([800.0, np.nan, 810.0])


def test_elevation_gain_worked_example():
    # 1 m of noise around 100 m is no climbing at 3 m; a 20-m climb and a 10-m descent are.
    altitude = [100, 101, 100, 101, 100, 105, 110, 115, 120, 119, 120, 115, 110]
    assert elevation_gain(altitude) == (20.0, 10.0)
    assert elevation_gain(altitude, threshold_m=0) == (23.0, 13.0)
    assert elevation_gain([100.0, np.nan, 104.0]) == (4.0, 0.0)
    assert elevation_gain([100.0]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="threshold_m"):
        elevation_gain(altitude, threshold_m=-1)
    with pytest.raises(ValueError, match="smoothing"):
        elevation_gain(altitude, smoothing="spline")


GPX_FILES = ["activity_4078723797.gpx", "4078723797_strava.gpx", "activity_4801048867.gpx",
             "4801048867_strava.gpx", "activity_5039744860.gpx"]


@pytest.mark.parametrize("name", GPX_FILES)
def test_with_gpxpys_smoothing_and_no_threshold_it_is_gpxpys_uphill_downhill(activities, name):
    with (activities / name).open(encoding="utf-8") as handle:
        uphill, downhill = gpxpy.parse(handle).get_uphill_downhill()
    altitude = read_activity(activities / name)["altitude_m"]
    gain, loss = elevation_gain(altitude, threshold_m=0, smoothing="gpxpy")
    assert gain == pytest.approx(uphill, abs=1e-6)
    assert loss == pytest.approx(downhill, abs=1e-6)


def stored_ascent(path):
    with fitdecode.FitReader(str(path)) as fit:
        for frame in fit:
            if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "session":
                return frame.get_value("total_ascent")
    raise AssertionError("no session")


def test_the_default_threshold_matches_the_head_units_total_ascent(activities, long_ride_as_read):
    assert ELEVATION_THRESHOLD_M == 3.0
    hilly = long_ride_as_read["altitude_m"].copy()
    assert elevation_gain(hilly).gain_m == pytest.approx(
        stored_ascent(activities / "4078723797.fit"), rel=0.01)
    # On a flat run gpxpy counts the altimeter's noise: 214 m where the head unit stored 79 m.
    flat = activities / "4801048867.fit"
    with (activities / "activity_4801048867.gpx").open(encoding="utf-8") as handle:
        gpxpy_uphill = gpxpy.parse(handle).get_uphill_downhill()[0]
    ours = elevation_gain(read_activity(flat)["altitude_m"]).gain_m
    head_unit = stored_ascent(flat)
    assert abs(ours - head_unit) < 0.5 * head_unit
    assert abs(ours - head_unit) < abs(gpxpy_uphill - head_unit) / 3
