"""A compact, deterministic summary of the athlete's own training, computed with ``sportlab``.

The Coach puts this text into the conversation before every answer, so any model (with or
without tool calling) answers from the athlete's numbers, and ``/data`` shows it as it is.

Reads ``~/activities/`` (FIT/GPX/TCX, also gzip-compressed, and the recordings inside .zip
archives, as people export them), the athlete's thresholds ``profile.toml`` and the daily
log ``log.csv`` (both formats are sportlab's, :mod:`sportlab.athlete`), and never writes
anything. Each session is sportlab's own row (:func:`sportlab.summarize_session`); rows are kept
in memory, keyed by the file's content hash and the thresholds, so a question never waits on
re-reading a season: a new or changed file is read once (without a measured HRmax, that reading
gives both its peak heart rate, for the estimate, and its row). Only a new highest heart rate on
record, which changes every session's zones, has the others read once more.
"""

from __future__ import annotations

import hashlib
import math
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

import sportlab
from sportlab.archives import inner_suffix, read_archive
from sportlab.athlete import (
    LOG_NAME,
    PROFILE_NAME,
    AthleteDataError,
    Profile,
    hooper_index,
    parse_log,
    read_profile,
)
from sportlab.metrics import acwr, hrv_readiness, session_rpe_load
from sportlab.readers import ActivityReadError, read_activity
from sportlab.session import SessionSummary, summarize_session

ACTIVITY_SUFFIXES = (".fit", ".gpx", ".tcx")
ARCHIVE_SUFFIX = ".zip"
# what sportlab reads: a recording, a gzip-compressed one (Strava's bulk export), a .zip of them
FILE_SUFFIXES = (*ACTIVITY_SUFFIXES, *(f"{s}.gz" for s in ACTIVITY_SUFFIXES), ARCHIVE_SUFFIX)
RECENT_SESSIONS = 10  # per-session lines in the summary: enough context, a bounded prompt
WINDOWS_DAYS = (7, 28)
IMPELLIZZERI = ("ACWR is descriptive only: Impellizzeri et al. (IJSPP 2020; Sports Med 2021) "
                "showed its link to injury is largely a statistical artefact; do not use it to "
                "predict injury or set load.")
ON_RECORD = "highest heart rate on record"


@dataclass(frozen=True)
class Recording:
    """One recording of ~/activities: a file (maybe .gz), or one inside a .zip (``member``)."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path.name}/{self.member}" if self.member else self.path.name


def recordings_of(path: Path, digest: str) -> dict[Recording, str]:
    """The recordings a file holds, each with the hash its row is cached by. A .zip's are
    listed from its directory (nothing is decompressed here); raises zipfile.BadZipFile."""
    if not path.name.lower().endswith(ARCHIVE_SUFFIX):
        return {Recording(path): digest}
    with zipfile.ZipFile(path) as archive:
        members = [m.filename for m in archive.infolist()
                   if not m.is_dir() and inner_suffix(m.filename) in ACTIVITY_SUFFIXES]
    return {Recording(path, member): f"{digest}/{member}" for member in members}


def read_frame(recording: Recording, frames: dict, hashes: dict[Recording, str]) -> pd.DataFrame:
    """The recording's samples, read once per summary: a .zip is read whole (within
    sportlab's limits against archive bombs) the first time one of its recordings is needed.
    Raises ActivityReadError (a ValueError) for what cannot be read."""
    if recording not in frames:
        if recording.member is None:
            frames[recording] = read_activity(recording.path)
        else:
            _read_zip(recording.path, [r for r in hashes if r.path == recording.path], frames)
    found = frames[recording]
    if isinstance(found, Exception):
        raise found
    return found


def _read_zip(path: Path, members: list[Recording], frames: dict) -> None:
    failure = None  # the whole archive refused: past a limit, or not a zip after all
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read = read_archive(path, on_error="skip")
        except ValueError as e:
            read, failure = {}, str(getattr(e, "problem", None) or e)
    # sportlab names each member it left out: "<archive>: <member> left out: <problem>"
    left_out = {}
    for warning in caught:
        text = str(warning.message)
        if text.startswith(f"{path.name}: ") and " left out: " in text:
            member, problem = text[len(path.name) + 2:].split(" left out: ", 1)
            left_out[member] = f"{member}: {problem}"
    for recording in members:
        frames[recording] = read[recording.member] if recording.member in read else \
            ActivityReadError(path, failure or left_out.get(
                recording.member, f"{recording.member}: could not be read"))


@dataclass
class Summary:
    text: str
    files_used: list[str]
    unreadable: list[str] = field(default_factory=list)


# (content hash, thresholds) -> the session's row; lives as long as the user's server (nothing
# is written to disk). The thresholds are part of the key: zones and loads depend on them.
_cache: dict[tuple[str, Profile], SessionSummary] = {}
# content hash -> the highest heart rate in the recording (None: it has none), for the estimate
# of HRmax when the athlete has not measured it
_peaks: dict[str, float | None] = {}
# (path, size, modification time) -> the content hash: a season's .zip export can be gigabytes,
# hashed once (in blocks, never whole in memory), not at every question
_hashes: dict[tuple[str, int, int], str] = {}


def content_hash(path: Path) -> str:
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def read_session(recording: Recording, content_hash: str, profile: Profile,
                 frame: pd.DataFrame | None = None) -> SessionSummary:
    """One recording's row from sportlab (cached by content and thresholds), from ``frame`` when
    it was read already. Raises ActivityReadError (a ValueError) for a file sportlab cannot read."""
    cached = _cache.get((content_hash, profile))
    if cached is None:
        cached = _cache[(content_hash, profile)] = summarize_session(
            recording.path if frame is None else frame, profile, name=recording.name)
    return replace(cached, file=recording.name)


@dataclass(frozen=True)
class LogDay:
    day: date
    srpe_load: float | None
    sleep_h: float | None
    resting_hr: float | None
    rmssd_ms: float | None
    hooper: float | None = None


def read_log(text: str) -> tuple[list[LogDay], list[str]]:
    """The daily log in sportlab's format (:data:`sportlab.athlete.LOG_COLUMNS`).

    Returns the days and one problem per line or value left out (named by line number)."""
    log = parse_log(text, LOG_NAME)
    days = []
    for row in log.frame.itertuples(index=False):
        rpe, minutes = _value(row.rpe), _value(row.minutes)
        load = session_rpe_load(rpe, minutes) if rpe is not None and minutes is not None \
            else None
        hooper = hooper_index(row.sleep_quality, row.stress, row.fatigue, row.soreness)
        days.append(LogDay(row.date.date(), load, _value(row.sleep_h), _value(row.resting_hr),
                           _value(row.rmssd_ms), _value(hooper)))
    return days, log.problems


def _value(number: float) -> float | None:
    return None if math.isnan(number) else float(number)


def _thresholds(folder: Path, problems: list[str]) -> Profile:
    try:
        return read_profile(folder / PROFILE_NAME)
    except AthleteDataError as e:  # named in the summary; the estimates are used instead
        problems.append(f"{PROFILE_NAME}: {e} (estimates used instead)")
        return Profile()


def summarise(folder: Path, today: date | None = None) -> Summary:
    """The summary of ``folder`` (the athlete's ``~/activities``), as text for the model."""
    today = today or datetime.now(UTC).date()
    unreadable: list[str] = []
    log_problems: list[str] = []
    profile = _thresholds(folder, log_problems)
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith(FILE_SUFFIXES)
                   and p.is_file()) if folder.is_dir() else []
    hashes: dict[Recording, str] = {}
    for path in files:
        try:
            hashes.update(recordings_of(path, content_hash(path)))
        except (OSError, zipfile.BadZipFile) as e:
            unreadable.append(f"{path.name} ({e})")
    frames: dict[Recording, pd.DataFrame] = {}  # recordings read by this call, read only once
    if profile.hr_max_bpm is None:
        # Without a measured HRmax, the highest heart rate on record stands in for it, in
        # every session alike.
        peak = _hr_max_on_record(hashes, frames, unreadable)
        if peak is not None:
            profile = profile.with_estimates(hr_max_bpm=(peak, ON_RECORD))
    sessions = _rows(hashes, profile, frames, unreadable)
    log_days: list[LogDay] = []
    log_path = folder / LOG_NAME
    if log_path.is_file():
        log_days, problems = read_log(log_path.read_text(errors="replace"))
        log_problems += problems
    sessions, duplicates = _one_file_per_ride(sessions)
    last_days = [s.date for s in sessions] + [d.day for d in log_days]
    if not last_days:
        text = (f"No training data in ~/activities yet ({len(unreadable)} unreadable files)."
                if unreadable else "No training data in ~/activities yet.")
        return Summary(_with_problems(text, unreadable, log_problems), [], unreadable)
    latest = max(last_days)
    # the windows end today, or at the last day on record when nothing is that recent
    end = today if (today - latest).days < max(WINDOWS_DAYS) else latest
    lines = [f"Athlete's own data (~/activities), computed with sportlab {sportlab.__version__}.",
             f"Windows end {end.isoformat()}" + ("" if end == today else
                                                 " (the most recent day on record)") + "."]
    lines += _threshold_lines(profile)
    for days in WINDOWS_DAYS:
        lines.append(_window_line(days, end, sessions, log_days))
    lines.append(_acwr_line("HR load", _daily(sessions), end))
    log_load: dict[date, float] = {}
    for d in log_days:  # two sessions on one day add up
        if d.srpe_load is not None:
            log_load[d.day] = log_load.get(d.day, 0.0) + d.srpe_load
    if log_load:
        lines.append(_acwr_line("session-RPE load", pd.Series(log_load, dtype=float), end))
    lines.append(IMPELLIZZERI)
    lines += _wellness_lines(log_days, end)
    recent = [s for s in sessions if s.date <= end][-RECENT_SESSIONS:]
    if recent:
        lines.append(f"Most recent sessions ({len(recent)} of {len(sessions)} on record):")
        lines += [_session_line(s) for s in reversed(recent)]
    if duplicates:
        lines.append("Same ride in several files, counted once: " + "; ".join(duplicates) + ".")
    used = [s.file for s in recent] + ([LOG_NAME] if log_days else [])
    return Summary(_with_problems("\n".join(lines), unreadable, log_problems), used, unreadable)


def _hr_max_on_record(hashes: dict[Recording, str], frames: dict[Recording, pd.DataFrame],
                      unreadable: list[str]) -> float | None:
    """The highest heart rate over every recording. A file whose peak is not known yet is read
    into ``frames``, where its row is taken from too; one sportlab cannot read leaves ``hashes``."""
    peaks = []
    for recording, content_hash in list(hashes.items()):
        if content_hash not in _peaks:
            try:
                frame = read_frame(recording, frames, hashes)
            except ValueError as e:  # sportlab.ActivityReadError is a ValueError
                unreadable.append(_unreadable(recording, e))
                del hashes[recording]
                continue
            hr = frame.get("heart_rate_bpm")
            _peaks[content_hash] = float(hr.max()) if hr is not None and hr.notna().any() \
                else None
        peaks.append(_peaks[content_hash])
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


def _rows(hashes: dict[Recording, str], profile: Profile,
          frames: dict[Recording, pd.DataFrame], unreadable: list[str]) -> list[SessionSummary]:
    rows = []
    for recording, content_hash in hashes.items():
        try:
            frame = frames.get(recording)
            if recording.member is not None and (content_hash, profile) not in _cache:
                frame = read_frame(recording, frames, hashes)  # no path of its own to read
            rows.append(read_session(recording, content_hash, profile, frame))
        except ValueError as e:  # sportlab.ActivityReadError is a ValueError
            unreadable.append(_unreadable(recording, e))
    return rows


def _unreadable(recording: Recording, error: ValueError) -> str:
    problem = getattr(error, "problem", None) or error
    if recording.member is not None:  # the archive's message names the member already
        return f"{recording.path.name} ({problem})"
    return f"{recording.name} ({problem})"


def _threshold_lines(profile: Profile) -> list[str]:
    lines = []
    if profile.hr_max_bpm is not None:
        hr_max = profile.hr_max_bpm
        source = ("the highest heart rate on record" if hr_max.source.endswith(ON_RECORD)
                  else f"{hr_max.source}" + (f", measured {hr_max.measured}"
                                              if hr_max.measured else ""))
        lines.append(f"HR zones are % of HRmax {hr_max.value:.0f} bpm ({source}); "
                     "HR load = Edwards TRIMP.")
    if profile.ftp_w is not None:
        lines.append(f"FTP {profile.ftp_w.describe()} W gives intensity and stress score.")
    return lines


def _one_file_per_ride(sessions: list[SessionSummary]
                       ) -> tuple[list[SessionSummary], list[str]]:
    """A ride exported twice (FIT and GPX, say) starts at the same second: count it once,
    keeping the richest file (power, then heart rate, then FIT)."""
    rides: dict[datetime, list[SessionSummary]] = {}
    for s in sessions:
        rides.setdefault(s.start, []).append(s)
    kept, duplicates = [], []
    for start in sorted(rides):
        ranked = sorted(rides[start], key=lambda s: (s.weighted_power_w is None,
                                                      s.avg_hr_bpm is None,
                                                      inner_suffix(s.file) != ".fit", s.file))
        kept.append(ranked[0])
        duplicates += [f"{d.file} (= {ranked[0].file})" for d in ranked[1:]]
    return kept, duplicates


def _daily(sessions: list[SessionSummary]) -> pd.Series:
    loads: dict[date, float] = {}
    for s in sessions:
        if s.trimp_edwards is not None:
            loads[s.date] = loads.get(s.date, 0.0) + s.trimp_edwards
    return pd.Series(loads, dtype=float)


def _window_line(days: int, end: date, sessions: list[SessionSummary],
                 log_days: list[LogDay]) -> str:
    start = end - timedelta(days=days - 1)
    inside = [s for s in sessions if start <= s.date <= end]
    minutes = sum(s.duration_s for s in inside) / 60
    parts = [f"Last {days} days ({start.isoformat()} to {end.isoformat()}): "
             + f"sessions {len(inside)}, {minutes:.0f} min"]
    with_hr = [s for s in inside if s.trimp_edwards is not None]
    if with_hr:
        parts.append(f"HR load {sum(s.trimp_edwards or 0.0 for s in with_hr):.0f}")
        zones: dict[str, float] = {}
        for s in with_hr:
            for zone, seconds in s.time_in_hr_zones_s.items():
                zones[zone] = zones.get(zone, 0.0) + seconds
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
    for label, attr, unit in (("Resting HR", "resting_hr", "bpm"), ("Sleep", "sleep_h", "h"),
                              ("Hooper index (4 best - 28 worst)", "hooper", "")):
        week = [getattr(d, attr) for d in log_days if getattr(d, attr) is not None
                and 0 <= (end - d.day).days < 7]
        month = [getattr(d, attr) for d in log_days if getattr(d, attr) is not None
                 and 0 <= (end - d.day).days < 28]
        if week:
            lines.append(f"{label}: 7-day mean {np.mean(week):.1f}{unit and ' ' + unit}, "
                         f"28-day mean {np.mean(month):.1f}{unit and ' ' + unit}.")
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


def _session_line(s: SessionSummary) -> str:
    parts = [f"- {s.start:%Y-%m-%d %H:%M} UTC {s.file}: {s.duration_s / 60:.0f} min"]
    if s.distance_m is not None:
        parts.append(f"{s.distance_m / 1000:.1f} km")
    if s.avg_hr_bpm is not None and s.trimp_edwards is not None:
        parts.append(f"mean HR {s.avg_hr_bpm:.0f} bpm, HR load {s.trimp_edwards:.0f}")
    if s.weighted_power_w is not None:
        parts.append(f"weighted power {s.weighted_power_w:.0f} W")
        if s.intensity is not None and s.stress_score is not None:
            parts.append(f"intensity {s.intensity:.2f}, stress score {s.stress_score:.0f}")
        parts.append("best " + ", ".join(f"{_duration(d)} {w:.0f} W"
                                         for d, w in s.best_power_w.items()))
    parts += s.problems
    return ", ".join(parts)


def _duration(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min"


def _with_problems(text: str, unreadable: list[str], log_problems: list[str]) -> str:
    if unreadable:
        text += "\nCould not read (left out): " + "; ".join(unreadable) + "."
    if log_problems:
        text += "\nLog lines left out: " + "; ".join(log_problems) + "."
    return text
