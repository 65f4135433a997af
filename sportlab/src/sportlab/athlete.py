"""The athlete's own files in ``~/activities``: thresholds (``profile.toml``) and the daily log
(``log.csv``). This module is the one definition of both formats; the Coach's ``/profile`` and
``/log`` commands and the squad service read and write them through it.

**profile.toml** holds the thresholds the athlete measured, each optional, each a table with
its value and, optionally, the day it was measured::

    # written by sportlab.athlete.write_profile
    [hr_max_bpm]
    value = 192.0
    measured = 2026-03-01

    [ftp_w]
    value = 265.0

A bare number (``ftp_w = 265``) is read too. Keys, units and accepted ranges are in
:data:`THRESHOLDS`. The file is read with :mod:`tomllib`; :func:`write_profile` writes this small
fixed format itself (numbers and dates only), so no TOML writer is needed.

**log.csv** is one line per session or day, the columns in :data:`LOG_COLUMNS` (any may be
empty; old files with only ``date,rpe,minutes,sleep_h,resting_hr,rmssd_ms`` keep working).
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

PROFILE_NAME = "profile.toml"
LOG_NAME = "log.csv"


@dataclass(frozen=True)
class Spec:
    """One value of the athlete's files: its name, unit, accepted range (inclusive) and meaning."""

    name: str
    unit: str
    low: float
    high: float
    meaning: str
    integer: bool = False

    def check(self, value: object) -> float:
        """``value`` as a float within the range, or :class:`AthleteDataError` naming it."""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise AthleteDataError(self.name, f"{value!r} is not a number") from None
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise AthleteDataError(
                self.name, f"{value!r} is outside the range {self.low:g}-{self.high:g} {self.unit}"
            )
        if self.integer and number != int(number):
            raise AthleteDataError(self.name, f"{value!r} is not a whole number")
        return number


class AthleteDataError(ValueError):
    """A value in profile.toml or log.csv (or given to the writers) is unusable; names the key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


# Ranges: what a measured threshold of a healthy adult can be, wide enough for elite athletes.
# HRmax: Tanaka H et al. JACC 2001;37:153-156 (208 - 0.7 age, SD ~10 bpm); resting HR of elite
# endurance athletes reaches the low 30s (D'Souza A et al. Exercise training reduces resting
# heart rate via downregulation of the funny channel HCN4. Nat Commun 2014;5:3775).
THRESHOLDS: tuple[Spec, ...] = (
    Spec("hr_max_bpm", "bpm", 120, 230, "maximal heart rate"),
    Spec("hr_rest_bpm", "bpm", 25, 120, "resting heart rate"),
    Spec("lthr_bpm", "bpm", 90, 220, "lactate-threshold heart rate (Friel)"),
    Spec("ftp_w", "W", 50, 600, "functional threshold power (cycling)"),
    Spec("threshold_pace_s_per_km", "s/km", 150, 900, "threshold running pace"),
    Spec("weight_kg", "kg", 30, 200, "body mass"),
)
_THRESHOLD = {s.name: s for s in THRESHOLDS}


@dataclass(frozen=True)
class Threshold:
    """A threshold value, the day it was measured (if known) and where it came from.

    ``source`` is ``"profile.toml"`` for the athlete's own file, or ``"estimate: ..."`` saying
    how a caller estimated it (e.g. ``"estimate: highest heart rate on record"``)."""

    value: float
    measured: date | None = None
    source: str = PROFILE_NAME

    def describe(self) -> str:
        when = f", measured {self.measured.isoformat()}" if self.measured else ""
        return f"{self.value:g} ({self.source}{when})"


@dataclass(frozen=True)
class Profile:
    """The athlete's thresholds; a field is None where profile.toml is silent."""

    hr_max_bpm: Threshold | None = None
    hr_rest_bpm: Threshold | None = None
    lthr_bpm: Threshold | None = None
    ftp_w: Threshold | None = None
    threshold_pace_s_per_km: Threshold | None = None
    weight_kg: Threshold | None = None

    def value(self, name: str) -> float | None:
        threshold = getattr(self, name)
        return None if threshold is None else threshold.value

    def with_estimates(self, **estimates: tuple[float, str] | None) -> Profile:
        """A copy where each field the profile is silent on takes ``(value, how)`` as an
        estimate (source ``"estimate: <how>"``); measured values are never overridden."""
        changes = {}
        for name, estimate in estimates.items():
            if name not in _THRESHOLD:
                raise AthleteDataError(name, "not a threshold of profile.toml")
            if estimate is not None and getattr(self, name) is None:
                value, how = estimate
                changes[name] = Threshold(float(value), None, f"estimate: {how}")
        return replace(self, **changes)


def read_profile(path: str | Path) -> Profile:
    """Read ``profile.toml`` (a missing file is an empty :class:`Profile`).

    Raises :class:`AthleteDataError` naming the key for an unknown key, a value outside its
    range (see :data:`THRESHOLDS`) or a bad date, and for a file that is not TOML."""
    path = Path(path)
    if not path.is_file():
        return Profile()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AthleteDataError(path.name, f"not a valid TOML file ({exc})") from None
    values = {}
    for key, entry in data.items():
        spec = _THRESHOLD.get(key)
        if spec is None:
            raise AthleteDataError(key, "unknown key (expected one of "
                                   + ", ".join(_THRESHOLD) + ")")
        measured = None
        if isinstance(entry, dict):
            unknown = set(entry) - {"value", "measured"}
            if unknown or "value" not in entry:
                raise AthleteDataError(key, "a table needs 'value' and may have 'measured'")
            measured = entry.get("measured")
            if measured is not None and (not isinstance(measured, date)
                                         or hasattr(measured, "hour")):
                raise AthleteDataError(key, f"measured must be a date like 2026-03-01, "
                                       f"got {measured!r}")
            entry = entry["value"]
        if isinstance(entry, bool):
            raise AthleteDataError(key, f"{entry!r} is not a number")
        values[key] = Threshold(spec.check(entry), measured)
    return Profile(**values)


def write_profile(path: str | Path, profile: Profile) -> None:
    """Write ``profile`` as profile.toml (atomically: a reader never sees half a file).

    Only values from the file itself are written (``source == "profile.toml"``): an estimate is
    not a measurement."""
    lines = ["# The athlete's thresholds, read by sportlab.athlete.read_profile.",
             "# Each is optional; 'measured' is the day it was measured (YYYY-MM-DD)."]
    for spec in THRESHOLDS:
        threshold = getattr(profile, spec.name)
        if threshold is None or threshold.source != PROFILE_NAME:
            continue
        lines += ["", f"# {spec.meaning}, {spec.unit}", f"[{spec.name}]",
                  f"value = {spec.check(threshold.value)!r}"]
        if threshold.measured is not None:
            lines.append(f"measured = {threshold.measured.isoformat()}")
    _write_atomically(Path(path), "\n".join(lines) + "\n")


def set_profile_values(
    path: str | Path, values: Mapping[str, float | None], measured: date | None = None
) -> Profile:
    """Set (or, with None, remove) thresholds in profile.toml, keeping the others; returns the
    new profile. ``measured`` is the day for the values set (None: not known). Each value is
    checked against :data:`THRESHOLDS` before anything is written."""
    profile = read_profile(path)
    changes: dict[str, Threshold | None] = {}
    for name, value in values.items():
        spec = _THRESHOLD.get(name)
        if spec is None:
            raise AthleteDataError(name, "unknown key (expected one of "
                                   + ", ".join(_THRESHOLD) + ")")
        changes[name] = None if value is None else Threshold(spec.check(value), measured)
    profile = replace(profile, **changes)
    write_profile(path, profile)
    return profile


# --- the daily log --------------------------------------------------------------------------

# Hooper items: 1 = very, very good (low) ... 7 = very, very bad (high). Hooper SL, Mackinnon LT.
# Monitoring overtraining in athletes. Recommendations. Sports Med 1995;20(5):321-327.
# RPE: Borg's CR-10 as used for session-RPE (Foster C et al. J Strength Cond Res 2001;15:109-115).
# rMSSD: normal short-term values 19-75 ms in healthy adults (Nunan D et al. PACE
# 2010;33:1407-1417); the range allows athletes' higher values.
LOG_COLUMNS: tuple[Spec, ...] = (
    Spec("rpe", "CR-10", 0, 10, "session RPE (Foster 2001): how hard the session was, 0-10"),
    Spec("minutes", "min", 0, 1440, "session duration"),
    Spec("sleep_h", "h", 0, 24, "hours slept last night"),
    Spec("resting_hr", "bpm", 25, 120, "morning resting heart rate"),
    Spec("rmssd_ms", "ms", 1, 300, "morning rMSSD"),
    Spec("sleep_quality", "points", 1, 7, "Hooper: sleep quality (1 very good, 7 very bad)", True),
    Spec("stress", "points", 1, 7, "Hooper: stress (1 very low, 7 very high)", True),
    Spec("fatigue", "points", 1, 7, "Hooper: fatigue (1 very low, 7 very high)", True),
    Spec("soreness", "points", 1, 7, "Hooper: muscle soreness (1 very low, 7 very high)", True),
)
_LOG_COLUMN = {s.name: s for s in LOG_COLUMNS}
LOG_HEADER = ("date", *_LOG_COLUMN)
HOOPER_ITEMS = ("sleep_quality", "stress", "fatigue", "soreness")


@dataclass
class DailyLog:
    """``frame``: one row per readable line, column ``date`` (datetime64, the athlete's day)
    and every column of :data:`LOG_COLUMNS` (float, NaN when empty or left out).
    ``problems``: one sentence per line or value left out, naming the line."""

    frame: pd.DataFrame
    problems: list[str] = field(default_factory=list)


def read_log(path: str | Path) -> DailyLog:
    """Read ``log.csv`` (a missing file is an empty log). See :func:`parse_log`."""
    path = Path(path)
    if not path.is_file():
        return parse_log("", path.name)
    return parse_log(path.read_text(encoding="utf-8", errors="replace"), path.name)


def parse_log(text: str, name: str = LOG_NAME) -> DailyLog:
    """The daily log from its CSV text.

    Header names are matched case-insensitively; missing columns are empty (old files keep
    working) and unknown ones ignored. A line whose date is not ``YYYY-MM-DD`` is left out; a
    value that is not a number or is outside its range (:data:`LOG_COLUMNS`) is left empty. Each
    is named in ``problems`` ("log.csv line 7: ...")."""
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in LOG_HEADER})
    empty["date"] = pd.Series(dtype="datetime64[s]")
    if not text.strip():
        return DailyLog(empty)
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames = [(n or "").strip().lower() for n in reader.fieldnames or []]
    if "date" not in reader.fieldnames:
        return DailyLog(empty, [f"{name}: no 'date' column in the first line"])
    rows, problems = [], []
    for row in reader:
        where = f"{name} line {reader.line_num}"
        try:
            day = date.fromisoformat((row.get("date") or "").strip())
        except ValueError:
            problems.append(f"{where}: date {row.get('date')!r} is not YYYY-MM-DD")
            continue
        values: dict[str, object] = {"date": day}
        for spec in LOG_COLUMNS:
            raw = (row.get(spec.name) or "").strip()
            values[spec.name] = np.nan
            if raw:
                try:
                    values[spec.name] = spec.check(raw)
                except AthleteDataError as exc:
                    problems.append(f"{where}: {exc}")
        rows.append(values)
    if not rows:
        return DailyLog(empty, problems)
    frame = pd.DataFrame(rows, columns=list(LOG_HEADER))
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[s]")
    frame[list(_LOG_COLUMN)] = frame[list(_LOG_COLUMN)].astype("float64")
    return DailyLog(frame, problems)


def append_log(path: str | Path, day: date, values: Mapping[str, float | None]) -> dict:
    """Append one line to ``log.csv`` after checking every value (:data:`LOG_COLUMNS`).

    Raises :class:`AthleteDataError` naming the column for an unknown column or a value outside
    its range, and writes nothing then. A new file gets the full header; an old file whose
    header lacks columns is rewritten with them added (its lines kept as they are, new columns
    empty), atomically. Returns the line written, as a dict of column -> text."""
    path = Path(path)
    line = {"date": day.isoformat()}
    for column, value in values.items():
        spec = _LOG_COLUMN.get(column)
        if spec is None:
            raise AthleteDataError(column, "unknown column (expected one of "
                                   + ", ".join(_LOG_COLUMN) + ")")
        if value is not None:
            number = spec.check(value)
            line[column] = str(int(number)) if number == int(number) else repr(number)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    header = next(csv.reader(io.StringIO(text)), []) if text.strip() else []
    header = [h.strip().lower() for h in header]
    if header and "date" not in header:
        raise AthleteDataError(path.name, "the first line has no 'date' column; fix it first")
    wanted = [*header, *[c for c in LOG_HEADER if c not in header]]
    if header == wanted:
        with path.open("a", encoding="utf-8", newline="") as handle:
            if text and not text.endswith("\n"):
                handle.write("\n")
            csv.DictWriter(handle, header, lineterminator="\n").writerow(line)
        return line
    out = io.StringIO()
    writer = csv.DictWriter(out, wanted, lineterminator="\n")
    writer.writeheader()
    if header:
        old = csv.DictReader(io.StringIO(text))
        _ = old.fieldnames  # consumes the header line
        old.fieldnames = header  # matched as the reader matches it
        for row in old:
            writer.writerow({k: v for k, v in row.items() if k in wanted})
    writer.writerow(line)
    _write_atomically(path, out.getvalue())
    return line


def hooper_index(
    sleep_quality: float, stress: float, fatigue: float, soreness: float
) -> float:
    """Hooper index: the sum of the four 1-7 ratings (sleep quality, stress, fatigue, muscle
    soreness), 4 (best) to 28 (worst). Hooper SL, Mackinnon LT, Howard A, Gordon RD, Bachmann
    AW. Markers for monitoring overtraining and recovery. Med Sci Sports Exerc 1995;27(1):106-112;
    Hooper SL, Mackinnon LT. Sports Med 1995;20(5):321-327. NaN if any item is missing.
    Neither paper, nor the later ones that use it (Rabbani et al. Front Physiol 2019;10:109,
    Nobari et al. Front Psychol 2021;12:671072), prints one day's four ratings with their sum, so
    the tests check the definition on hand-worked cases, named as such."""
    items = {"sleep_quality": sleep_quality, "stress": stress, "fatigue": fatigue,
             "soreness": soreness}
    total = 0.0
    for name, value in items.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return math.nan
        total += _LOG_COLUMN[name].check(value)
    return total


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = [
    "HOOPER_ITEMS",
    "LOG_COLUMNS",
    "LOG_HEADER",
    "LOG_NAME",
    "PROFILE_NAME",
    "THRESHOLDS",
    "AthleteDataError",
    "DailyLog",
    "Profile",
    "Spec",
    "Threshold",
    "append_log",
    "hooper_index",
    "parse_log",
    "read_log",
    "read_profile",
    "set_profile_values",
    "write_profile",
]
