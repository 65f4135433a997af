"""A compact, deterministic summary of the athlete's own training, computed with ``sportlab``.

The Coach puts this text into the conversation before every answer, so any model (with or
without tool calling) answers from the athlete's numbers, and ``/data`` shows it as it is.

Reads ``~/activities/`` (FIT/GPX/TCX) and the optional daily log ``~/activities/log.csv``, and
never writes anything: per-file results are kept in memory, keyed by the file's content hash, so
a question never waits on re-reading a season (only new or changed files are read).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

import sportlab
from sportlab.metrics import (
    acwr,
    hr_zones,
    hrv_readiness,
    mean_max_power,
    session_rpe_load,
    time_in_zones,
    trimp_edwards,
    weighted_power,
)

ACTIVITY_SUFFIXES = (".fit", ".gpx", ".tcx")
LOG_NAME = "log.csv"
BEST_EFFORTS_S = (5, 60, 300, 1200)
RECENT_SESSIONS = 10  # per-session lines in the summary: enough context, a bounded prompt
WINDOWS_DAYS = (7, 28)
IMPELLIZZERI = ("ACWR is descriptive only: Impellizzeri et al. (IJSPP 2020; Sports Med 2021) "
                "showed its link to injury is largely a statistical artefact; do not use it to "
                "predict injury or set load.")


@dataclass(frozen=True)
class Session:
    """What one recording says, independent of every other file (so it can be cached)."""

    file: str
    start: pd.Timestamp
    duration_s: float
    distance_km: float | None
    hr: pd.Series | None  # heart rate (bpm) by timestamp: sportlab times it, pauses and all
    weighted_power_w: float | None
    best_efforts_w: dict[int, float]
    problem: str | None = None  # a metric sportlab refused for this file (e.g. a power dropout)


@dataclass
class Summary:
    text: str
    files_used: list[str]
    unreadable: list[str] = field(default_factory=list)


# content hash -> Session; lives as long as the user's server (nothing is written to disk)
_cache: dict[str, Session] = {}


def read_session(path: Path, content_hash: str) -> Session:
    """One recording through sportlab (cached by content). Raises ActivityReadError (and
    ValueError for a recording sportlab reads but cannot analyse at all)."""
    cached = _cache.get(content_hash)
    if cached is not None:
        return replace(cached, file=path.name)
    frame = sportlab.read_activity(path)
    index = frame.index
    duration = float((index[-1] - index[0]).total_seconds())
    hr = frame["heart_rate_bpm"].dropna() if "heart_rate_bpm" in frame else None
    power = frame["power_w"].dropna() if "power_w" in frame else None
    distance = frame["distance_m"].dropna() if "distance_m" in frame else None
    wp, best, problem = None, {}, None
    if power is not None and len(power) and float(power.max()) > 0:
        try:
            wp = weighted_power(frame["power_w"])
            best = {int(d): float(w) for d, w in
                    mean_max_power(frame["power_w"], list(BEST_EFFORTS_S)).items()}
        except ValueError as e:  # e.g. a long mid-ride power dropout: named, not guessed
            wp, best, problem = None, {}, f"power left out: {e}"
    session = Session(
        file=path.name,
        start=index[0],
        duration_s=duration,
        distance_km=float(distance.max()) / 1000 if distance is not None and len(distance) else None,
        hr=hr if hr is not None and len(hr) else None,
        weighted_power_w=wp,
        best_efforts_w=best,
        problem=problem,
    )
    _cache[content_hash] = session
    return session


def hr_max_on_record(sessions: list[Session]) -> float | None:
    peaks = [float(s.hr.max()) for s in sessions if s.hr is not None]
    return max(peaks) if peaks else None


def zone_seconds(session: Session, hr_max: float) -> pd.Series:
    return time_in_zones(session.hr, hr_zones("hrmax", hr_max=hr_max))


def hr_load(session: Session, hr_max: float) -> float:
    """Edwards' TRIMP: the heart-rate load, comparable between sessions of one athlete."""
    return trimp_edwards(session.hr, hr_max)


@dataclass(frozen=True)
class LogDay:
    day: date
    srpe_load: float | None
    sleep_h: float | None
    resting_hr: float | None
    rmssd_ms: float | None


def read_log(text: str) -> tuple[list[LogDay], list[str]]:
    """The daily log: ``date, rpe, minutes, sleep_h, resting_hr, rmssd_ms`` (any may be empty).

    Returns the days and one problem per unreadable line (named by line number)."""
    days, problems = [], []
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames = [(n or "").strip().lower() for n in reader.fieldnames or []]
    if "date" not in reader.fieldnames:
        return [], ["log.csv: no 'date' column in the first line"]
    for row in reader:
        try:
            rpe, minutes = _number(row, "rpe"), _number(row, "minutes")
            load = session_rpe_load(rpe, minutes) if rpe is not None and minutes is not None \
                else None
            days.append(LogDay(date.fromisoformat(row["date"].strip()), load,
                               _number(row, "sleep_h"), _number(row, "resting_hr"),
                               _number(row, "rmssd_ms")))
        except (ValueError, AttributeError) as e:
            problems.append(f"log.csv line {reader.line_num}: {e}")
    return days, problems


def _number(row: dict, name: str) -> float | None:
    value = (row.get(name) or "").strip()
    return float(value) if value else None


def summarise(folder: Path, today: date | None = None) -> Summary:
    """The summary of ``folder`` (the athlete's ``~/activities``), as text for the model."""
    today = today or datetime.now(UTC).date()
    sessions, unreadable = [], []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in ACTIVITY_SUFFIXES
                   and p.is_file()) if folder.is_dir() else []
    for path in files:
        try:
            sessions.append(read_session(path, hashlib.sha256(path.read_bytes()).hexdigest()))
        except (ValueError, OSError) as e:  # sportlab.ActivityReadError is a ValueError
            unreadable.append(f"{path.name} ({getattr(e, 'problem', None) or e})")
    log_days, log_problems = [], []
    log_path = folder / LOG_NAME
    if log_path.is_file():
        log_days, log_problems = read_log(log_path.read_text(errors="replace"))
    sessions, duplicates = _one_file_per_ride(sessions)
    last_days = [s.start.date() for s in sessions] + [d.day for d in log_days]
    if not last_days:
        text = (f"No training data in ~/activities yet ({len(unreadable)} unreadable files)."
                if unreadable else "No training data in ~/activities yet.")
        return Summary(_with_problems(text, unreadable, log_problems), [], unreadable)
    latest = max(last_days)
    # the windows end today, or at the last day on record when nothing is that recent
    end = today if (today - latest).days < max(WINDOWS_DAYS) else latest
    hr_max = hr_max_on_record(sessions)
    lines = [f"Athlete's own data (~/activities), computed with sportlab {sportlab.__version__}.",
             f"Windows end {end.isoformat()}" + ("" if end == today else
                                                 " (the most recent day on record)") + "."]
    if hr_max:
        lines.append(f"HR zones are % of HRmax {hr_max:.0f} bpm (the highest heart rate on "
                     "record); HR load = Edwards TRIMP.")
    daily_load = _daily(sessions, hr_max)
    for days in WINDOWS_DAYS:
        lines.append(_window_line(days, end, sessions, hr_max, log_days))
    lines.append(_acwr_line("HR load", daily_load, end))
    log_load = {d.day: d.srpe_load for d in log_days if d.srpe_load is not None}
    if log_load:
        lines.append(_acwr_line("session-RPE load", pd.Series(log_load, dtype=float), end))
    lines.append(IMPELLIZZERI)
    lines += _wellness_lines(log_days, end)
    recent = [s for s in sessions if s.start.date() <= end][-RECENT_SESSIONS:]
    if recent:
        lines.append(f"Most recent sessions ({len(recent)} of {len(sessions)} on record):")
        lines += [_session_line(s, hr_max) for s in reversed(recent)]
    if duplicates:
        lines.append("Same ride in several files, counted once: " + "; ".join(duplicates) + ".")
    used = [s.file for s in recent] + ([LOG_NAME] if log_days else [])
    return Summary(_with_problems("\n".join(lines), unreadable, log_problems), used, unreadable)


def _one_file_per_ride(sessions: list[Session]) -> tuple[list[Session], list[str]]:
    """A ride exported twice (FIT and GPX, say) starts at the same second: count it once,
    keeping the richest file (power, then heart rate, then FIT)."""
    rides: dict[pd.Timestamp, list[Session]] = {}
    for s in sessions:
        rides.setdefault(s.start, []).append(s)
    kept, duplicates = [], []
    for start in sorted(rides):
        ranked = sorted(rides[start], key=lambda s: (s.weighted_power_w is None, s.hr is None,
                                                      not s.file.lower().endswith(".fit"), s.file))
        kept.append(ranked[0])
        duplicates += [f"{d.file} (= {ranked[0].file})" for d in ranked[1:]]
    return kept, duplicates


def _daily(sessions: list[Session], hr_max: float | None) -> pd.Series:
    if not hr_max:
        return pd.Series(dtype=float)
    loads: dict[date, float] = {}
    for s in sessions:
        if s.hr is not None:
            loads[s.start.date()] = loads.get(s.start.date(), 0.0) + hr_load(s, hr_max)
    return pd.Series(loads, dtype=float)


def _window_line(days: int, end: date, sessions: list[Session], hr_max: float | None,
                 log_days: list[LogDay]) -> str:
    start = end - timedelta(days=days - 1)
    inside = [s for s in sessions if start <= s.start.date() <= end]
    minutes = sum(s.duration_s for s in inside) / 60
    parts = [f"Last {days} days ({start.isoformat()} to {end.isoformat()}): "
             + f"sessions {len(inside)}, {minutes:.0f} min"]
    if hr_max and any(s.hr is not None for s in inside):
        with_hr = [s for s in inside if s.hr is not None]
        parts.append(f"HR load {sum(hr_load(s, hr_max) for s in with_hr):.0f}")
        zones = sum(zone_seconds(s, hr_max) for s in with_hr)
        parts.append("time in HR zones " + ", ".join(
            f"{zone} {seconds / 60:.0f} min" for zone, seconds in zones.items()))
    srpe = [d.srpe_load for d in log_days if start <= d.day <= end and d.srpe_load is not None]
    if srpe:
        parts.append(f"session-RPE load {sum(srpe):.0f} AU over {len(srpe)} logged sessions")
    return "; ".join(parts) + "."


def _acwr_line(name: str, loads: pd.Series, end: date) -> str:
    """Rolling 7:28-day ACWR on the day ``end``, when 28 days of history exist."""
    if loads.empty:
        return f"ACWR ({name}): no data."
    first = min(loads.index)
    if (end - first).days + 1 < 28:
        return f"ACWR ({name}): not enough history (needs 28 days, has {(end - first).days + 1})."
    index = pd.date_range(first, end, freq="D")
    daily = pd.Series([float(loads.get(d.date(), 0.0)) for d in index], index=index)
    row = acwr(daily, 7, 28, method="rolling").iloc[-1]
    ratio = "undefined (no chronic load)" if math.isnan(row["acwr"]) else f"{row['acwr']:.2f}"
    return (f"ACWR ({name}, rolling 7:28 days) on {end.isoformat()}: {ratio} "
            f"(acute {row['acute']:.1f}, chronic {row['chronic']:.1f} per day).")


def _wellness_lines(log_days: list[LogDay], end: date) -> list[str]:
    lines = []
    rmssd = {pd.Timestamp(d.day): math.log(d.rmssd_ms) for d in log_days
             if d.rmssd_ms and 0 <= (end - d.day).days < 28}
    if rmssd:
        lines.append(_hrv_line(rmssd, end))
    for label, attr, unit in (("Resting HR", "resting_hr", "bpm"), ("Sleep", "sleep_h", "h")):
        week = [getattr(d, attr) for d in log_days if getattr(d, attr) is not None
                and 0 <= (end - d.day).days < 7]
        month = [getattr(d, attr) for d in log_days if getattr(d, attr) is not None
                 and 0 <= (end - d.day).days < 28]
        if week:
            lines.append(f"{label}: 7-day mean {np.mean(week):.1f} {unit}, 28-day mean "
                         f"{np.mean(month):.1f} {unit}.")
    return lines


def _hrv_line(ln_rmssd_by_day: dict[pd.Timestamp, float], end: date) -> str:
    series = pd.Series(ln_rmssd_by_day).sort_index()
    series = series.reindex(pd.date_range(series.index[0], pd.Timestamp(end), freq="D"))
    last = hrv_readiness(series).iloc[-1]
    if math.isnan(last["rolling_mean"]):
        return f"HRV (ln rMSSD): {len(ln_rmssd_by_day)} mornings logged, too few for a 7-day mean."
    if math.isnan(last["baseline_mean"]):
        return (f"HRV (ln rMSSD): 7-day mean {last['rolling_mean']:.2f}, no baseline yet "
                "(needs 14 mornings).")
    band = "BELOW the normal band (reduced readiness)" if last["below_swc"] else \
        "within or above the normal band"
    return (f"HRV (ln rMSSD): 7-day mean {last['rolling_mean']:.2f}, baseline "
            f"{last['baseline_mean']:.2f}, normal band {last['swc_low']:.2f}-{last['swc_high']:.2f}: "
            f"{band}.")


def _session_line(s: Session, hr_max: float | None) -> str:
    parts = [f"- {s.start:%Y-%m-%d %H:%M} UTC {s.file}: {s.duration_s / 60:.0f} min"]
    if s.distance_km is not None:
        parts.append(f"{s.distance_km:.1f} km")
    if s.hr is not None and hr_max:
        parts.append(f"mean HR {s.hr.mean():.0f} bpm, HR load {hr_load(s, hr_max):.0f}")
    if s.weighted_power_w is not None:
        parts.append(f"weighted power {s.weighted_power_w:.0f} W")
        parts.append("best " + ", ".join(f"{_duration(d)} {w:.0f} W"
                                         for d, w in s.best_efforts_w.items()))
    if s.problem:
        parts.append(s.problem)
    return ", ".join(parts)


def _duration(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min"


def _with_problems(text: str, unreadable: list[str], log_problems: list[str]) -> str:
    if unreadable:
        text += "\nCould not read (left out): " + "; ".join(unreadable) + "."
    if log_problems:
        text += "\nLog lines left out: " + "; ".join(log_problems) + "."
    return text
