"""The Coach's training summary and its plain-language refusals, without a stack."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

import sportlab.session
from sporthub_coach import athlete_data
from sporthub_coach.athlete_data import read_log, summarise
from sporthub_coach.messages import language_of, refusal
from sportlab.metrics import acwr, hrv_readiness, session_rpe_load


def test_a_corrupt_file_is_named_and_the_rest_is_summarised(tmp_path, activities):
    shutil.copy(activities / "2020-06-01-16-52-40.fit", tmp_path)
    (tmp_path / "ride.gpx").write_text("<gpx><broken")
    summary = summarise(tmp_path, today=date(2020, 6, 3))
    assert summary.files_used == ["2020-06-01-16-52-40.fit"]
    assert [u.split(" ")[0] for u in summary.unreadable] == ["ride.gpx"]
    assert "Could not read (left out): ride.gpx" in summary.text
    assert "Last 7 days (2020-05-28 to 2020-06-03): sessions 1" in summary.text


def test_old_data_is_summarised_over_its_own_most_recent_weeks(tmp_path, activities):
    shutil.copy(activities / "4801048867.fit", tmp_path)
    summary = summarise(tmp_path, today=date(2026, 11, 27))
    assert "Windows end 2020-04-18 (the most recent day on record)" in summary.text
    assert "Last 28 days (2020-03-22 to 2020-04-18): sessions 1, 86 min" in summary.text


def test_files_are_read_once_per_content(tmp_path, activities, monkeypatch):
    shutil.copy(activities / "2020-06-01-16-52-40.fit", tmp_path / "a.fit")
    summarise(tmp_path)
    reads = []
    monkeypatch.setattr(athlete_data, "summarize_session",
                        lambda path, *_, **__: reads.append(path) or pytest_fail())
    shutil.copy(tmp_path / "a.fit", tmp_path / "same-ride-renamed.fit")
    summary = summarise(tmp_path)
    assert reads == [] and "same-ride-renamed.fit" in summary.text


def test_a_new_recording_is_parsed_once_for_its_peak_and_its_row(tmp_path, activities,
                                                                  monkeypatch):
    shutil.copy(activities / "2020-06-01-16-52-40.fit", tmp_path / "new.fit")
    parsed = []
    monkeypatch.setattr(athlete_data, "_cache", {})  # as if the server had just started
    monkeypatch.setattr(athlete_data, "_peaks", {})

    def counting(read):
        return lambda path, *args, **kwargs: parsed.append(path) or read(path, *args, **kwargs)

    # every way in: the Coach's own reading and summarize_session's reading of a path
    monkeypatch.setattr(athlete_data, "read_activity", counting(athlete_data.read_activity))
    monkeypatch.setattr(sportlab.session, "read_activity", counting(sportlab.session.read_activity))
    summary = summarise(tmp_path)
    assert parsed == [tmp_path / "new.fit"]
    assert "HRmax" in summary.text and "highest heart rate on record" in summary.text


def pytest_fail():
    raise AssertionError("a cached file was read again")


def test_the_daily_log_gives_session_rpe_load_acwr_and_hrv(tmp_path):
    end = date(2026, 3, 31)
    days = [end - timedelta(days=n) for n in range(34, -1, -1)]
    rng = np.random.default_rng(7)
    rpe = rng.integers(3, 9, len(days))
    minutes = rng.integers(30, 90, len(days))
    rmssd = rng.normal(60, 6, len(days)).round(1)
    lines = ["date,rpe,minutes,sleep_h,resting_hr,rmssd_ms"]
    lines += [f"{d},{r},{m},7.5,48,{h}" for d, r, m, h in zip(days, rpe, minutes, rmssd)]
    lines.append("31/03/2026,5,60,,,")
    (tmp_path / "log.csv").write_text("\n".join(lines))
    summary = summarise(tmp_path, today=end)

    load = pd.Series(session_rpe_load(rpe, minutes), index=pd.DatetimeIndex(days))
    expected = acwr(load, 7, 28, method="rolling").iloc[-1]
    assert (f"ACWR (session-RPE load, rolling 7:28 days) on {end}: {expected['acwr']:.2f}"
            in summary.text)
    week = session_rpe_load(rpe, minutes)[-7:].sum()
    assert f"session-RPE load {week:.0f} AU over 7 logged sessions" in summary.text
    readiness = hrv_readiness(pd.Series(np.log(rmssd), index=pd.DatetimeIndex(days))[-28:])
    assert f"7-day mean {readiness['rolling_mean'].iloc[-1]:.2f}" in summary.text
    assert "Impellizzeri" in summary.text
    assert "log.csv line 37" in summary.text  # the line with a non-ISO date is named
    assert summary.files_used == ["log.csv"]


def test_a_log_without_a_date_column_is_named_not_a_crash():
    days, problems = read_log("day,rpe\n2026-01-01,5\n")
    assert days == [] and problems == ["log.csv: no 'date' column in the first line"]


def test_refusals_are_plain_sentences_in_the_language_asked():
    now = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
    said = refusal("en", "budget_exhausted", 429, 9000, now=now)
    assert said == ("You have used today's AI budget. It resets at 00:00 UTC, in about 2 h 30 "
                    "min. Until then the Coach cannot answer.")
    assert refusal("ru", "upstream_unavailable", 503, 30).startswith("Модель ИИ сейчас недоступна")
    assert "429" not in refusal("en", None, 429, None)
    assert language_of("Как дела?") == "ru" and language_of("How are you?") == "en"


def test_the_same_ride_in_two_files_is_counted_once(tmp_path, activities):
    for name in ("2020-06-01-16-52-40.fit", "activity_5039744860.gpx"):
        shutil.copy(activities / name, tmp_path)
    summary = summarise(tmp_path, today=date(2020, 6, 3))
    assert summary.files_used == ["2020-06-01-16-52-40.fit"]  # the one with power
    assert "sessions 1," in summary.text
    assert ("counted once: activity_5039744860.gpx (= 2020-06-01-16-52-40.fit)"
            in summary.text)
