"""Read FIT, GPX and TCX activity recordings into one tidy DataFrame shape.

Every reader returns a DataFrame indexed by a tz-aware UTC ``timestamp`` with SI columns, only
those the file actually records: ``power_w``, ``heart_rate_bpm``, ``cadence_rpm``, ``speed_m_s``,
``distance_m``, ``altitude_m``, ``latitude_deg``, ``longitude_deg``.

Pauses stay as gaps in the index and dropouts as NaN: nothing is resampled or filled here. The
metrics put a channel on a 1-s grid by its timestamps (:func:`sportlab.resample.resample_1hz`)
and say in their docstrings what a pause counts as for them.

:func:`read_sessions` reads the summary a head unit stores in a FIT file's ``session`` message
(its own average and weighted power, timer time, ...): a reference the recording carries.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sportlab.archives import (
    DEFAULT_LIMITS,
    ArchiveLimitError,
    ArchiveLimits,
    inner_suffix,
    read_gzipped,
)
from sportlab.clock import repair_clock
from sportlab.plausible import OnImplausible, clean_frame
from sportlab.resample import PAUSE_GAP_S

COLUMNS = (
    "power_w",
    "heart_rate_bpm",
    "cadence_rpm",
    "speed_m_s",
    "distance_m",
    "altitude_m",
    "latitude_deg",
    "longitude_deg",
)

# FIT stores positions as 32-bit "semicircles": 2**31 semicircles == 180 degrees.
_SEMICIRCLE_TO_DEG = 180.0 / 2**31
_EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius


class ActivityReadError(ValueError):
    """A recording could not be read; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"cannot read activity file {str(path)!r}: {problem}")


def read_activity(
    path: str | Path,
    *,
    on_implausible: OnImplausible = "gap",
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> pd.DataFrame:
    """Read a FIT, GPX or TCX recording (chosen by file extension), also gzip-compressed.

    ``.fit.gz``, ``.gpx.gz`` and ``.tcx.gz`` (Strava's bulk export) are read directly within
    ``limits`` against archive bombs (:class:`sportlab.archives.ArchiveLimitError` past them);
    a ``.zip`` of recordings is read with :func:`sportlab.read_archive`.

    Returns a DataFrame indexed by UTC timestamp with the SI columns listed in the module
    docstring; ``frame.attrs["sport"]`` is the sport the file names (lower-case), or None.
    A clock that jumps back or repeats a time, and GPX points out of order, are handled as
    :mod:`sportlab.clock` documents (FIT/TCX keep their recorded order, GPX is sorted by time,
    exact repeats such as TCX's lap boundaries are one sample), with a
    :class:`sportlab.clock.ClockWarning` for each change but the exact repeats.
    Samples outside their channel's bounds (negative power, a 255-bpm heart rate, ...; see
    :mod:`sportlab.plausible`) are read as missing with an
    :class:`sportlab.plausible.ImplausibleSampleWarning`, or with ``on_implausible="raise"``
    refused (:class:`sportlab.plausible.ImplausibleSampleError`).
    Raises :class:`ActivityReadError` for a missing, corrupt, empty or unknown file.
    """
    path = Path(path)
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".fit": _read_fit,
        ".gpx": _read_gpx,
        ".tcx": _read_tcx,
    }
    suffix = inner_suffix(path)
    reader = readers.get(suffix)
    if reader is None:
        if path.suffix.lower() == ".zip":
            raise ActivityReadError(path, "a .zip holds many recordings: read it with "
                                    "sportlab.read_archive(path)")
        raise ActivityReadError(
            path, f"unknown file type {path.suffix!r} (expected .fit, .gpx or .tcx, "
            "optionally .gz)"
        )
    if not path.is_file():
        raise ActivityReadError(path, "file does not exist")
    try:
        if path.suffix.lower() == ".gz":
            frame = read_gzipped(path, reader, limits)
        else:
            frame = reader(path)
    except (ActivityReadError, ArchiveLimitError):
        raise
    except Exception as exc:  # the parser libraries raise many unrelated types
        raise ActivityReadError(path, f"{type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise ActivityReadError(path, "no timestamped samples in the file")
    return clean_frame(frame, on_implausible=on_implausible)


# FIT session fields (FIT SDK profile names) -> sportlab's SI column names. "normalized_power",
# "intensity_factor" and "training_stress_score" are the FIT names of what sportlab calls
# weighted power, intensity and stress score.
SESSION_FIELDS = {
    "sport": "sport",
    "start_time": "start",
    "total_elapsed_time": "elapsed_s",
    "total_timer_time": "timer_s",
    "avg_power": "avg_power_w",
    "max_power": "max_power_w",
    "normalized_power": "weighted_power_w",
    "intensity_factor": "intensity",
    "training_stress_score": "stress_score",
    "threshold_power": "threshold_power_w",
    "avg_heart_rate": "avg_heart_rate_bpm",
    "max_heart_rate": "max_heart_rate_bpm",
}


def read_sessions(path: str | Path) -> pd.DataFrame:
    """The head unit's own summary of each session in a FIT file, one row per session.

    Columns (values the device did not store are NaN): ``sport``, ``start`` (UTC),
    ``elapsed_s``, ``timer_s`` (elapsed time minus pauses), ``avg_power_w``, ``max_power_w``,
    ``weighted_power_w``, ``intensity``, ``stress_score``, ``threshold_power_w``,
    ``avg_heart_rate_bpm``, ``max_heart_rate_bpm``. Only FIT files carry a session message;
    other files, and FIT files without one, raise :class:`ActivityReadError`.
    """
    path = Path(path)
    if path.suffix.lower() != ".fit":
        raise ActivityReadError(path, "only FIT files store a session summary")
    if not path.is_file():
        raise ActivityReadError(path, "file does not exist")
    import fitdecode

    rows: list[dict[str, object]] = []
    try:
        with fitdecode.FitReader(str(path), check_crc=fitdecode.CrcCheck.RAISE) as fit:
            for frame in fit:
                if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "session":
                    rows.append(
                        {
                            column: frame.get_value(field, fallback=None)
                            for field, column in SESSION_FIELDS.items()
                        }
                    )
    except Exception as exc:  # the parser raises many unrelated types
        raise ActivityReadError(path, f"{type(exc).__name__}: {exc}") from exc
    if not rows:
        raise ActivityReadError(path, "no session message in the file")
    sessions = pd.DataFrame(rows, columns=list(SESSION_FIELDS.values()))
    sessions["start"] = pd.to_datetime(sessions["start"], utc=True)
    numeric = [c for c in sessions.columns if c not in ("sport", "start")]
    sessions[numeric] = sessions[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    return sessions


def _tidy(
    records: list[dict[str, object]], order: Literal["recorded", "time"], what: str
) -> pd.DataFrame:
    """Build the common DataFrame shape from per-sample dicts with a ``timestamp`` key, in file
    order; the clock is then repaired by ``order`` (:func:`sportlab.clock.repair_clock`)."""
    frame = pd.DataFrame.from_records(records)
    if frame.empty or "timestamp" not in frame:
        return pd.DataFrame(columns=list(COLUMNS), index=pd.DatetimeIndex([], tz="UTC"))
    frame = frame.dropna(subset=["timestamp"])
    index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True), name="timestamp")
    frame.index = index
    frame = frame[[c for c in COLUMNS if c in frame]].apply(pd.to_numeric, errors="coerce")
    frame = frame.dropna(axis="columns", how="all").astype("float64")
    return repair_clock(frame, order, what=what, stacklevel=5)


def _read_fit(path: Path) -> pd.DataFrame:
    import fitdecode

    # Prefer the "enhanced" fields: the plain ones overflow (speed > 65.5 m/s, altitude > 6.5 km).
    field_map = {
        "power": "power_w",
        "heart_rate": "heart_rate_bpm",
        "cadence": "cadence_rpm",
        "speed": "speed_m_s",
        "enhanced_speed": "speed_m_s",
        "distance": "distance_m",
        "altitude": "altitude_m",
        "enhanced_altitude": "altitude_m",
        "position_lat": "latitude_deg",
        "position_long": "longitude_deg",
    }
    records: list[dict[str, object]] = []
    sport = None
    with fitdecode.FitReader(str(path), check_crc=fitdecode.CrcCheck.RAISE) as fit:
        for frame in fit:
            if not isinstance(frame, fitdecode.FitDataMessage):
                continue
            if frame.name in ("session", "sport") and sport is None:
                sport = frame.get_value("sport", fallback=None)
            if frame.name != "record":
                continue
            row: dict[str, object] = {"timestamp": frame.get_value("timestamp", fallback=None)}
            for field in frame.fields:
                column = field_map.get(field.name)
                if column is None or field.value is None:
                    continue
                if column in row and not field.name.startswith("enhanced_"):
                    continue
                value = field.value
                if column in ("latitude_deg", "longitude_deg"):
                    value = value * _SEMICIRCLE_TO_DEG
                row[column] = value
            records.append(row)
    return _with_sport(_tidy(records, "recorded", path.name), sport)


def _with_sport(frame: pd.DataFrame, sport: object) -> pd.DataFrame:
    # The sport as the file names it (FIT "cycling", GPX/TCX "Biking", ...), lower-cased.
    frame.attrs["sport"] = str(sport).strip().lower() if sport not in (None, "") else None
    return frame


def _read_gpx(path: Path) -> pd.DataFrame:
    import gpxpy

    with path.open(encoding="utf-8") as handle:
        gpx = gpxpy.parse(handle)
    extension_map = {"hr": "heart_rate_bpm", "cad": "cadence_rpm", "power": "power_w"}
    records: list[dict[str, object]] = []
    sport = next((t.type for t in gpx.tracks if t.type), None)
    for track in gpx.tracks:
        for segment in track.segments:
            for point in segment.points:
                row: dict[str, object] = {
                    "timestamp": point.time,
                    "latitude_deg": point.latitude,
                    "longitude_deg": point.longitude,
                    "altitude_m": point.elevation,
                }
                # Garmin nests hr/cad in TrackPointExtension, Strava puts <power> at top level.
                for element in _walk(point.extensions):
                    column = extension_map.get(_local_name(element.tag))
                    if column is not None and element.text:
                        row[column] = float(element.text)
                records.append(row)
    frame = _tidy(records, "time", path.name)  # GPX points carry nothing but their times
    # GPX carries no distance channel: derive it from the positions, like the devices do.
    if not frame.empty and {"latitude_deg", "longitude_deg"} <= set(frame.columns):
        elapsed_s = (frame.index - frame.index[0]).total_seconds().to_numpy()
        frame["distance_m"] = cumulative_distance_m(
            frame["latitude_deg"].to_numpy(), frame["longitude_deg"].to_numpy(), elapsed_s
        )
    return _with_sport(frame, sport)


def _read_tcx(path: Path) -> pd.DataFrame:
    from tcxreader.tcxreader import TCXReader

    # only_gps=False keeps indoor samples (no position) instead of silently dropping them.
    exercise = TCXReader().read(str(path), only_gps=False)
    records: list[dict[str, object]] = []
    for point in exercise.trackpoints:
        extensions = point.tpx_ext or {}
        records.append(
            {
                # TCX times are UTC ("Z"); tcxreader returns them naive.
                "timestamp": point.time,
                "latitude_deg": point.latitude,
                "longitude_deg": point.longitude,
                "altitude_m": point.elevation,
                "distance_m": point.distance,
                "heart_rate_bpm": point.hr_value,
                "cadence_rpm": point.cadence,
                "speed_m_s": extensions.get("Speed"),
                "power_w": extensions.get("Watts"),
            }
        )
    sport = getattr(exercise, "activity_type", None)
    return _with_sport(_tidy(records, "recorded", path.name), sport)


def _walk(elements: Iterable[ET.Element]) -> Iterable[ET.Element]:
    for element in elements:
        yield from element.iter()


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def cumulative_distance_m(
    latitude_deg: np.ndarray,
    longitude_deg: np.ndarray,
    elapsed_s: np.ndarray | None = None,
    pause_gap_s: float = PAUSE_GAP_S,
) -> np.ndarray:
    """Cumulative great-circle distance in metres along a track (haversine formula).

    Samples without a position add no distance. When ``elapsed_s`` is given, a step across a
    time gap longer than ``pause_gap_s`` adds nothing: the gap is a stopped timer, and devices
    do not count what the GPS drifted (or the bike was carried) while paused. Reference for the
    formula: Sinnott RW. Virtues of the Haversine. Sky and Telescope 1984;68(2):159.
    """
    lat = np.radians(np.asarray(latitude_deg, dtype=float))
    lon = np.radians(np.asarray(longitude_deg, dtype=float))
    if lat.size == 0:
        return np.zeros(0)
    dlat = np.diff(lat)
    dlon = np.diff(lon)
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(dlon / 2) ** 2
    step = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    step = np.nan_to_num(step, nan=0.0)
    if elapsed_s is not None:
        step[np.diff(np.asarray(elapsed_s, dtype=float)) > pause_gap_s] = 0.0
    return np.concatenate([[0.0], np.cumsum(step)])


__all__ = [
    "COLUMNS",
    "PAUSE_GAP_S",
    "ActivityReadError",
    "cumulative_distance_m",
    "read_activity",
    "read_sessions",
]
