"""VDOT against Daniels' tables; grade-adjusted pace against Minetti et al. 2002."""

import numpy as np
import pandas as pd
import pytest

from sportlab.metrics import (
    GradeError,
    VdotRangeError,
    grade_adjusted_pace,
    minetti_energy_cost,
    race_time_s,
    vdot,
)


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
    # Outside the measured range the cost is held at the +/-45 % value, up to 100 %.
    assert grade_adjusted_pace(1.0, 0.8) == grade_adjusted_pace(1.0, 0.45)
    assert minetti_energy_cost(1.0) == minetti_energy_cost(0.45)
    assert minetti_energy_cost(-1.0) == minetti_energy_cost(-0.45)


@pytest.mark.parametrize("grade", [10, -5.0, 1.01, np.array([0.02, np.nan, 8.0, 0.03]),
                                   pd.Series([0.0, 12.0])])
def test_a_grade_in_percent_is_refused_not_read_as_45_percent(grade):
    # 10 meaning 10 % was clipped to 0.45 and gave 3.7 times the flat speed without a word.
    with pytest.raises(GradeError, match=r"grades are fractions \(rise/run\), 0\.10 = 10 %"):
        minetti_energy_cost(grade)
    with pytest.raises(GradeError) as refused:
        grade_adjusted_pace(3.0, grade)
    assert abs(refused.value.grade) > 1.0


def test_missing_grades_stay_missing_next_to_steep_real_ones():
    costs = minetti_energy_cost(np.array([np.nan, 0.6, -1.0]))
    assert np.isnan(costs[0]) and costs[1] == minetti_energy_cost(0.45)
    assert costs[2] == minetti_energy_cost(-0.45)


@pytest.mark.parametrize(
    ("distance_m", "time_s", "name"),
    [
        (5000, 1, "time_s"),  # gave a VDOT of 7.3 million
        (5000, 10 * 86400, "time_s"),  # ten days gave -5.7
        (5000, 45 * 60, "time_s"),  # VDOT ~21, slower than the table's slowest row (30)
        (5000, 11 * 60, "time_s"),  # VDOT ~100, beyond the world record (the table stops at 85)
        (800, 120, "distance_m"),  # the table starts at 1500 m
        (100_000, 8 * 3600, "distance_m"),  # and ends at the marathon
    ],
)
def test_vdot_refuses_races_outside_the_tabulated_range(distance_m, time_s, name):
    with pytest.raises(VdotRangeError, match="Daniels' Running Formula") as error:
        vdot(distance_m, time_s)
    assert error.value.name == name and isinstance(error.value, ValueError)


def test_vdot_array_names_the_race_out_of_range():
    with pytest.raises(VdotRangeError, match="5000 m in 1 s"):
        vdot(np.array([5000.0, 5000.0]), np.array([20 * 60.0, 1.0]))
    values = vdot(np.array([5000.0, 10000.0]), np.array([20 * 60.0, 41 * 60 + 21.0]))
    assert values == pytest.approx([49.8, 50.0], abs=0.1)


@pytest.mark.parametrize(
    ("table_vdot", "distance_m", "time_s"),
    [
        # The corners of Daniels' table (tlgs/vdot's transcription of Daniels' Running Formula):
        # every tabulated race is accepted despite its time being rounded to the second.
        (30, 1500, 8 * 60 + 30),
        (85, 1500, 3 * 60 + 23),
        (30, 42195, 4 * 3600 + 49 * 60 + 17),
        (85, 42195, 2 * 3600 + 1 * 60 + 10),
    ],
)
def test_vdot_accepts_the_corners_of_the_table(table_vdot, distance_m, time_s):
    assert vdot(distance_m, time_s) == pytest.approx(table_vdot, abs=0.1)
    assert race_time_s(table_vdot, distance_m) == pytest.approx(time_s, rel=0.003)


@pytest.mark.parametrize(("vdot_value", "distance_m", "name"), [
    (20.0, 5000, "vdot_value"), (95.0, 5000, "vdot_value"), (50.0, 800, "distance_m"),
])
def test_race_time_refuses_outside_the_tabulated_range(vdot_value, distance_m, name):
    with pytest.raises(VdotRangeError) as error:
        race_time_s(vdot_value, distance_m)
    assert error.value.name == name
