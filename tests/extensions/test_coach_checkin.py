"""``/log`` and ``/profile``: what the athlete types becomes exactly one row or value in the files
sportlab reads, in English and Russian; anything unclear writes nothing and says why."""

from __future__ import annotations

import csv
from datetime import date

import pytest

from sporthub_coach import checkin
from sportlab.athlete import LOG_HEADER, read_log, read_profile

TODAY = date(2026, 3, 10)


def rows(folder):
    with (folder / "log.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("body, lang", [
    ("rpe 7 60min sleep 7.5h soreness 3", "en"),
    ("rpe 7 60 min sleep 7.5 h soreness 3", "en"),
    ("rpe 7 min 60 sleep 7.5h soreness 3", "en"),
    ("RPE=7, minutes: 60, sleep: 7,5h, soreness 3", "en"),
    ("рпе 7 60мин сон 7,5ч болезненность 3", "ru"),
    ("тяжесть 7 мин 1ч спал 7.5 часов крепатура 3", "ru"),
])
def test_a_check_in_appends_one_row_in_sportlabs_columns(tmp_path, body, lang):
    answer = checkin.log(tmp_path, body, lang, today=TODAY)
    written = rows(tmp_path)
    assert list(written[0]) == list(LOG_HEADER)
    assert written == [{**dict.fromkeys(LOG_HEADER, ""), "date": "2026-03-10", "rpe": "7",
                        "minutes": "60", "sleep_h": "7.5", "soreness": "3"}]
    # sportlab reads it back with no complaint
    log = read_log(tmp_path / "log.csv")
    assert log.problems == [] and log.frame["sleep_h"].tolist() == [7.5]
    assert ("Written to" if lang == "en" else "Записано") in answer and "2026-03-10" in answer


def test_hours_slept_and_sleep_quality_are_different_words(tmp_path):
    checkin.log(tmp_path, "sleep 6h quality 2 yesterday", "en", today=TODAY)
    checkin.log(tmp_path, "качество 5 2026-03-08", "ru", today=TODAY)
    written = rows(tmp_path)
    assert [(r["date"], r["sleep_h"], r["sleep_quality"]) for r in written] == [
        ("2026-03-09", "6", "2"), ("2026-03-08", "", "5")]


@pytest.mark.parametrize("body, lang, why", [
    ("sleep 6", "en", "hours slept or sleep quality"),          # never guessed
    ("сон 6", "ru", "часы сна или качество сна"),
    ("rpe 12", "en", "RPE: 12 is not possible (0-10"),
    ("soreness 2.5", "en", "must be a whole number"),
    ("rpe 7 rpe 8", "en", "RPE is given twice"),
    ("7.5h", "en", "hours slept or session length"),
    ("rpe", "en", "“rpe” needs a number"),
    ("7", "en", "the number 7 has no word"),
    ("rpe 7 mood 5", "en", "I do not know the word “mood”"),
    ("настроение 5", "ru", "Я не знаю слова «настроение»"),
    ("rpe 7h", "en", "h is not a unit of RPE"),
    ("rpe 5 2026-03-11", "en", "2026-03-11 is in the future"),
    ("rpe 5 2026-02-30", "en", "not a date"),
])
def test_an_unclear_check_in_writes_nothing_and_says_why(tmp_path, body, lang, why):
    answer = checkin.log(tmp_path, body, lang, today=TODAY)
    assert answer.startswith("Nothing was written" if lang == "en" else "Ничего не записано")
    assert why in answer, answer
    assert not (tmp_path / "log.csv").exists()


def test_an_unclear_check_in_leaves_an_existing_log_as_it_was(tmp_path):
    checkin.log(tmp_path, "rpe 6 45min", "en", today=TODAY)
    before = (tmp_path / "log.csv").read_bytes()
    checkin.log(tmp_path, "rpe 6 sleep 8", "en", today=TODAY)
    assert (tmp_path / "log.csv").read_bytes() == before


def test_profile_sets_thresholds_and_shows_them(tmp_path):
    answer = checkin.profile(tmp_path, "hrmax 192 ftp 265 pace 4:10", "en", today=TODAY)
    assert "HRmax 192" in answer and "threshold pace 4:10" in answer
    profile = read_profile(tmp_path / "profile.toml")
    assert profile.value("hr_max_bpm") == 192 and profile.value("ftp_w") == 265
    assert profile.value("threshold_pace_s_per_km") == 250
    assert profile.hr_max_bpm.measured == TODAY
    # Russian words, keeping what was there
    checkin.profile(tmp_path, "вес 68,5 чссмакс 190", "ru", today=TODAY)
    profile = read_profile(tmp_path / "profile.toml")
    assert (profile.value("weight_kg"), profile.value("hr_max_bpm"),
            profile.value("ftp_w")) == (68.5, 190, 265)
    shown = checkin.profile(tmp_path, "", "ru", today=TODAY)
    assert "ЧСС макс: 190 bpm" in shown and "FTP: 265 W" in shown and "вес: 68.5 kg" in shown


def test_profile_refuses_an_impossible_value_and_keeps_the_file(tmp_path):
    checkin.profile(tmp_path, "ftp 265", "en", today=TODAY)
    before = (tmp_path / "profile.toml").read_bytes()
    answer = checkin.profile(tmp_path, "ftp 265 hrmax 300", "en", today=TODAY)
    assert answer.startswith("Nothing was written") and "HRmax: 300 is not possible" in answer
    assert (tmp_path / "profile.toml").read_bytes() == before
    empty = checkin.profile(tmp_path / "nothing", "", "en", today=TODAY)
    assert "none set yet" in empty and not (tmp_path / "nothing").exists()


def test_a_broken_log_file_is_named_and_not_overwritten(tmp_path):
    (tmp_path / "log.csv").write_text("day,rpe\n2026-03-01,5\n", encoding="utf-8")
    answer = checkin.log(tmp_path, "rpe 6", "en", today=TODAY)
    assert "activities/log.csv" in answer and answer.startswith("Nothing was written")
    assert (tmp_path / "log.csv").read_text() == "day,rpe\n2026-03-01,5\n"


def test_commands_are_recognised_only_at_the_start():
    assert checkin.command_of("/log rpe 7") == ("/log", "rpe 7")
    assert checkin.command_of("/PROFILE") == ("/profile", "")
    assert checkin.command_of("how do I /log?") == (None, "how do I /log?")


def test_after_a_bare_log_only_check_in_values_are_taken_as_the_answer():
    assert checkin.looks_like_log("rpe 6 сон 7ч")
    assert checkin.looks_like_log("45min")
    assert not checkin.looks_like_log("How should I pace a 10 km race?")
    assert not checkin.looks_like_log("Как бежать 10км?")
