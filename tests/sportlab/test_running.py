"""VDOT against Daniels' tables; grade-adjusted pace against Minetti et al. 2002."""

import numpy as np
import pytest

from sportlab.metrics import grade_adjusted_pace, minetti_energy_cost, race_time_s, vdot


def test_vdot_5k_in_20_minutes():
    # Daniels' Running Formula tables: 5 km in 20:00 is VDOT ~49.8.
    assert vdot(5000, 20 * 60) == pytest.approx(49.8, abs=0.05)


@pytest.mark.parametrize(
    ("table_vdot", "distance_m", "time_s"),
    [
        # Daniels' Running Formula, VDOT race-equivalence table (times rounded to the second).
        (40, 5000, 24 * 60 + 8),
        (40, 10000, 50 * 60 + 3),
        (40, 42195, 3 * 3600 + 49 * 60 + 45),
        (50, 5000, 19 * 60 + 57),
        (50, 10000, 41 * 60 + 21),
        (50, 42195, 3 * 3600 + 10 * 60 + 49),
        (60, 5000, 17 * 60 + 3),
        (60, 10000, 35 * 60 + 22),
        (60, 42195, 2 * 3600 + 43 * 60 + 25),
    ],
)
def test_vdot_matches_daniels_table(table_vdot, distance_m, time_s):
    assert vdot(distance_m, time_s) == pytest.approx(table_vdot, abs=0.15)
    assert race_time_s(table_vdot, distance_m) == pytest.approx(time_s, rel=0.002)


def test_minetti_cost_on_the_flat_is_3_6():
    assert minetti_energy_cost(0.0) == pytest.approx(3.6)


@pytest.mark.parametrize(
    ("grade", "measured", "sd"),
    [
        # Minetti et al. 2002 abstract: measured Cr (J/kg/m), mean +/- SD of 10 runners.
        (0.0, 3.40, 0.24),
        (0.45, 18.93, 1.74),
        (-0.20, 1.73, 0.36),
        (-0.45, 3.92, 0.81),
    ],
)
def test_minetti_polynomial_reproduces_measured_costs(grade, measured, sd):
    assert abs(minetti_energy_cost(grade) - measured) < sd


def test_minetti_polynomial_values_and_minimum():
    # 155.4*0.1^5 - 30.4*0.1^4 - 43.3*0.1^3 + 46.3*0.1^2 + 19.5*0.1 + 3.6 = 5.968214
    assert minetti_energy_cost(0.1) == pytest.approx(5.968214)
    grades = np.linspace(-0.45, 0.45, 901)
    assert -0.20 <= grades[np.argmin(minetti_energy_cost(grades))] <= -0.16


def test_grade_adjusted_pace():
    assert grade_adjusted_pace(4.0, 0.0) == pytest.approx(4.0)
    # Uphill 10 %: same metabolic power as 4 m/s * 5.968214 / 3.6 on the flat.
    assert grade_adjusted_pace(4.0, 0.1) == pytest.approx(4.0 * 5.968214 / 3.6)
    assert grade_adjusted_pace(4.0, -0.1) < 4.0
    # Outside the measured range the cost is held at the +/-45 % value.
    assert grade_adjusted_pace(1.0, 0.8) == grade_adjusted_pace(1.0, 0.45)
