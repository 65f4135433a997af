"""The athlete's own files: profile.toml (thresholds) and log.csv (the daily log)."""

import math
import stat
import tomllib
from datetime import date

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sportlab.athlete import (
    LOG_COLUMNS,
    LOG_HEADER,
    THRESHOLDS,
    AthleteDataError,
    Profile,
    Threshold,
    append_log,
    hooper_index,
    parse_log,
    read_log,
    read_profile,
    set_profile_values,
    write_profile,
)


def test_a_missing_profile_is_silent_on_everything(tmp_path):
    assert read_profile(tmp_path / "profile.toml") == Profile()


def test_tables_and_bare_numbers_are_read_with_the_day_measured(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text("ftp_w = 265\n[hr_max_bpm]\nvalue = 192\nmeasured = 2026-03-01\n")
    profile = read_profile(path)
    assert profile.ftp_w == Threshold(265.0, None, "profile.toml")
    assert profile.hr_max_bpm == Threshold(192.0, date(2026, 3, 1), "profile.toml")
    assert profile.lthr_bpm is None and profile.value("weight_kg") is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("hr_max_bpm = 400\n", "hr_max_bpm"),  # no heart beats that fast at its maximum
        ("ftp_w = -5\n", "ftp_w"),
        ("ftp_w = inf\n", "ftp_w"),
        ("ftp_w = nan\n", "ftp_w"),
        ("ftp_w = true\n", "ftp_w"),
        ("ftp = 250\n", "ftp"),  # unknown key: a typo is named, not ignored
        ("[lthr_bpm]\nvalue = 170\nmeasured = 'yesterday'\n", "lthr_bpm"),
        ("[lthr_bpm]\nmeasured = 2026-01-01\n", "lthr_bpm"),
        ("ftp_w = = 1\n", "profile.toml"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_key(tmp_path, text, key):
    path = tmp_path / "profile.toml"
    path.write_text(text)
    with pytest.raises(AthleteDataError) as error:
        read_profile(path)
    assert error.value.key == key


def test_set_profile_values_round_trips_through_tomllib_and_keeps_the_others(tmp_path):
    path = tmp_path / "profile.toml"
    set_profile_values(path, {"hr_max_bpm": 191, "ftp_w": 250.5}, measured=date(2026, 2, 1))
    profile = set_profile_values(path, {"ftp_w": 262, "weight_kg": 71.2})
    assert profile == read_profile(path)
    assert profile.hr_max_bpm == Threshold(191.0, date(2026, 2, 1))
    assert profile.ftp_w == Threshold(262.0, None) and profile.weight_kg == Threshold(71.2)
    assert tomllib.loads(path.read_text())["hr_max_bpm"] == {
        "value": 191.0, "measured": date(2026, 2, 1)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # health data: the athlete's only
    assert set_profile_values(path, {"ftp_w": None}).ftp_w is None


def test_set_profile_values_refuses_before_writing_anything(tmp_path):
    path = tmp_path / "profile.toml"
    set_profile_values(path, {"ftp_w": 250})
    before = path.read_text()
    for values in ({"ftp_w": 260, "hr_max_bpm": 20}, {"fpt_w": 260}):
        with pytest.raises(AthleteDataError):
            set_profile_values(path, values)
    assert path.read_text() == before


@given(st.fixed_dictionaries({}, optional={
    s.name: st.floats(s.low, s.high, allow_nan=False) for s in THRESHOLDS}),
    st.none() | st.dates(date(1990, 1, 1), date(2100, 1, 1)))
def test_any_valid_profile_written_is_read_back_the_same(values, measured):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "profile.toml"
        profile = Profile(**{k: Threshold(v, measured) for k, v in values.items()})
        write_profile(path, profile)
        assert read_profile(path) == profile


def test_estimates_fill_only_where_the_profile_is_silent():
    profile = Profile(ftp_w=Threshold(250.0))
    filled = profile.with_estimates(ftp_w=(300.0, "x"), hr_max_bpm=(188.0, "highest on record"))
    assert filled.ftp_w == Threshold(250.0)
    assert filled.hr_max_bpm == Threshold(188.0, None, "estimate: highest on record")


OLD_LOG = "date,rpe,minutes,sleep_h,resting_hr,rmssd_ms\n2026-03-01,6,60,7.5,48,62.5\n"


def test_an_old_log_keeps_working_with_the_new_columns_empty():
    log = parse_log(OLD_LOG)
    assert log.problems == []
    assert list(log.frame.columns) == list(LOG_HEADER)
    row = log.frame.iloc[0]
    assert row["date"] == pd.Timestamp("2026-03-01") and row["rpe"] == 6
    assert row["rmssd_ms"] == 62.5 and math.isnan(row["fatigue"])


def test_bad_lines_and_values_are_named_by_line_and_the_rest_kept():
    text = ("Date, RPE ,minutes,fatigue,extra\n"
            "2026-03-01,6,60,8,x\n"       # fatigue 8 is off the 1-7 scale
            "01/03/2026,5,60,3,\n"        # not an ISO date: the line is left out
            "2026-03-02,inf,45,2.5,\n"    # inf RPE; a Hooper rating is a whole number
            "2026-03-03,4,30,2,\n")
    log = parse_log(text)
    assert list(log.frame["date"].dt.day) == [1, 2, 3]
    assert log.frame["rpe"].tolist()[0] == 6 and math.isnan(log.frame["fatigue"].iloc[0])
    assert [p.split(":")[0] for p in log.problems] == [
        "log.csv line 2", "log.csv line 3", "log.csv line 4", "log.csv line 4"]
    assert log.problems[0] == "log.csv line 2: fatigue: '8' is outside the range 1-7 points"


def test_append_log_writes_a_header_then_rows_that_read_back(tmp_path):
    path = tmp_path / "log.csv"
    append_log(path, date(2026, 3, 1), {"rpe": 6, "minutes": 75, "fatigue": 3})
    append_log(path, date(2026, 3, 2), {"sleep_h": 7.25, "soreness": 2})
    assert path.read_text().splitlines()[0] == ",".join(LOG_HEADER)
    log = read_log(path)
    assert log.problems == [] and len(log.frame) == 2
    assert log.frame["minutes"].iloc[0] == 75 and log.frame["sleep_h"].iloc[1] == 7.25


def test_append_log_upgrades_an_old_header_and_keeps_its_lines(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(OLD_LOG.rstrip("\n"))  # no final newline, as editors leave it
    append_log(path, date(2026, 3, 2), {"rpe": 3, "minutes": 30, "stress": 4})
    log = read_log(path)
    assert log.problems == []
    assert log.frame["rmssd_ms"].iloc[0] == 62.5 and log.frame["stress"].iloc[1] == 4
    append_log(path, date(2026, 3, 3), {"rpe": 2, "minutes": 20})  # plain append now
    assert len(read_log(path).frame) == 3


@pytest.mark.parametrize("values", [{"rpe": 11}, {"rpe": float("inf")}, {"soreness": 0},
                                    {"resting_hr": 300}, {"mood": 3}, {"minutes": "long"}])
def test_append_log_refuses_bad_values_and_writes_nothing(tmp_path, values):
    path = tmp_path / "log.csv"
    with pytest.raises(AthleteDataError) as error:
        append_log(path, date(2026, 3, 1), values)
    assert error.value.key == next(iter(values))
    assert not path.exists()


def test_every_log_column_has_a_unit_and_a_range():
    for spec in LOG_COLUMNS:
        assert spec.unit and spec.low < spec.high and spec.meaning


def test_hooper_index_is_the_sum_of_the_four_ratings():
    """Against the definition, with a hand-worked case named as such: no published worked example.

    Hooper & Mackinnon (Sports Med 1995;20:321) and Hooper et al. (Med Sci Sports Exerc
    1995;27:106) define the index as the sum of the four 1-7 ratings but print no single day's
    four ratings with their sum. The later papers searched report only group means of each item
    or weekly sums, never one morning's four ratings next to its index: Rabbani et al. (Front
    Physiol 2019;10:109) give effect sizes and typical errors; Nobari et al. (Front Psychol
    2021;12:671072) give weekly sums of single items from different weeks (week 28: fatigue 5.38,
    soreness 4.86, index 20.43 AU, but that week's sleep and stress are not given), so no
    published row can be summed and compared. Worked examples with all four numbers exist only on
    coaching web pages (not peer reviewed), so the cases below are worked by hand from the
    definition.
    """
    # Bounds of the definition: four items of 1 (best) to 7 (worst) give 4 to 28.
    assert hooper_index(1, 1, 1, 1) == 4 and hooper_index(7, 7, 7, 7) == 28
    # Hand-worked: sleep quality 3 + stress 4 + fatigue 5 + soreness 2 = 14.
    assert hooper_index(sleep_quality=3, stress=4, fatigue=5, soreness=2) == 14
    # Hand-worked, each item on its own: the order of the arguments is the order of the sum's
    # terms, so swapping two items with different values must not change the index, and raising
    # one item by 1 raises the index by exactly 1.
    assert hooper_index(5, 4, 3, 2) == hooper_index(2, 3, 4, 5) == 14
    assert hooper_index(3, 4, 6, 2) - hooper_index(3, 4, 5, 2) == 1
    assert math.isnan(hooper_index(3, float("nan"), 5, 2))
    with pytest.raises(AthleteDataError):
        hooper_index(3, 8, 5, 2)
    with pytest.raises(AthleteDataError):
        hooper_index(0, 4, 5, 2)
