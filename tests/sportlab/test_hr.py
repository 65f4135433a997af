"""TRIMP (Banister, Edwards, Lucia) and heart-rate zones."""

import math

import numpy as np
import pytest

from sportlab.metrics import hr_zones, time_in_zones, trimp, trimp_edwards, trimp_lucia


def test_banister_trimp_worked_example():
    # 30 min at 160 bpm, rest 60, max 200: dHR = 100/140 = 0.7143.
    # Men:   30 * 0.7143 * 0.64 * e^(1.92 * 0.7143) = 54.05
    # Women: 30 * 0.7143 * 0.86 * e^(1.67 * 0.7143) = 60.75
    fraction = 100 / 140
    male = 30 * fraction * 0.64 * math.exp(1.92 * fraction)
    female = 30 * fraction * 0.86 * math.exp(1.67 * fraction)
    assert male == pytest.approx(54.05, abs=0.01)
    assert female == pytest.approx(60.75, abs=0.01)
    assert trimp(30, 160, 60, 200, "male") == pytest.approx(male)
    assert trimp(30, 160, 60, 200, "female") == pytest.approx(female)


def test_banister_trimp_vectorised_and_rest_is_zero():
    values = trimp(np.array([60, 60]), np.array([60, 200]), 60, 200)
    assert values[0] == 0.0
    assert values[1] == pytest.approx(60 * 0.64 * math.exp(1.92))
    with pytest.raises(ValueError):
        trimp(30, 150, 60, 200, sex="x")


def test_edwards_trimp_zone_weights():
    # Edwards 1993: 10 min at 55 % HRmax (weight 1) + 10 min at 95 % (weight 5) = 60.
    hr = np.concatenate([np.full(600, 110.0), np.full(600, 190.0)])
    assert trimp_edwards(hr, hr_max=200) == pytest.approx(60.0)
    # Zone boundaries belong to the upper zone: 70 % HRmax exactly is weight 3.
    assert trimp_edwards(np.full(60, 140.0), hr_max=200) == pytest.approx(3.0)
    assert trimp_edwards(np.full(60, 90.0), hr_max=200) == 0.0


def test_lucia_trimp_three_zones():
    # Lucia 2003: minutes below VT1 x1 + between thresholds x2 + above VT2 x3.
    hr = np.concatenate([np.full(1200, 130.0), np.full(600, 160.0), np.full(300, 180.0)])
    assert trimp_lucia(hr, vt1_bpm=150, vt2_bpm=175) == pytest.approx(20 + 20 + 15)
    with pytest.raises(ValueError):
        trimp_lucia(hr, 175, 150)


def test_hr_zone_methods():
    by_max = hr_zones("hrmax", hr_max=200)
    assert by_max["lower_bpm"].tolist() == [100, 120, 140, 160, 180]
    # Karvonen: rest 60, max 200, 50 % of reserve = 60 + 0.5 * 140 = 130.
    karvonen = hr_zones("karvonen", hr_max=200, hr_rest=60)
    assert karvonen["lower_bpm"].tolist() == pytest.approx([130, 144, 158, 172, 186])
    # Friel (cycling): Z2 from 81 % LTHR, Z5a from 100 %.
    friel = hr_zones("lthr", lthr_bpm=170)
    assert friel.loc["Z2", "lower_bpm"] == pytest.approx(137.7)
    assert friel.loc["Z5a", "lower_bpm"] == pytest.approx(170)
    assert list(friel.index) == ["Z1", "Z2", "Z3", "Z4", "Z5a", "Z5b", "Z5c"]
    run = hr_zones("lthr", lthr_bpm=170, sport="running")
    assert run.loc["Z2", "lower_bpm"] == pytest.approx(144.5)
    with pytest.raises(ValueError):
        hr_zones("karvonen", hr_max=200)


def test_time_in_zones_counts_seconds():
    zones = hr_zones("hrmax", hr_max=200)
    hr = np.array([90, 110, 119.9, 120, 185, np.nan, 210])
    seconds = time_in_zones(hr, zones)
    assert seconds.tolist() == [2.0, 1.0, 0.0, 0.0, 2.0]
