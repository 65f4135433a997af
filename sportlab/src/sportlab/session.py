"""One row per recorded session: what the Coach's summary and the squad service both show.

:func:`summarize_session` reads a recording and returns a :class:`SessionSummary` whose field
names carry their units. Threshold-based values (zones, TRIMP, intensity, stress score) use the
athlete's :class:`sportlab.athlete.Profile`; where it is silent, the maximal heart rate falls
back to the highest heart rate in this recording (said in ``thresholds``), and FTP has no
estimate (intensity, stress score and power zones are then None/empty). A caller that knows
better estimates (the highest heart rate on record over a season) passes them with
:meth:`Profile.with_estimates`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sportlab.athlete import Profile, Threshold
from sportlab.clock import forwards
from sportlab.metrics.hr import hr_zones, per_second, time_in_zones, trimp_edwards
from sportlab.metrics.power import (
    intensity,
    mean_max_power,
    power_zones,
    stress_score,
    to_1hz,
    weighted_power,
)
from sportlab.plausible import clean_frame
from sportlab.readers import read_activity
from sportlab.resample import MAX_DROPOUT_S, PAUSE_GAP_S, moving_time_s

# Best efforts reported per session: sprint, 1 min, 5 min (VO2max) and 20 min (the FTP test).
BEST_EFFORTS_S = (5, 60, 300, 1200)


@dataclass(frozen=True)
class SessionSummary:
    """One session. Units are in the field names; None where the recording cannot say.

    * ``file``: the file's name; ``start``: first sample (UTC); ``date``: its UTC day;
      ``sport``: as the file names it (lower-case) or None.
    * ``duration_s``: elapsed, first to last sample; ``moving_time_s``: minus pauses (timer
      time, :func:`sportlab.resample.moving_time_s`); ``distance_m``.
    * ``avg_hr_bpm`` (over recorded time, by the timestamps: a smart-recorded ride's samples
      are not equally long), ``max_hr_bpm``; ``trimp_edwards`` (AU, Edwards 1993, needs HRmax);
      ``time_in_hr_zones_s``: seconds in the %HRmax zones Z1-Z5 (Edwards 1993).
    * ``avg_power_w`` (over moving time), ``max_power_w``, ``weighted_power_w`` (30-s 4th-power
      mean), ``intensity`` (weighted power / FTP), ``stress_score`` (100 = 1 h at FTP),
      ``time_in_power_zones_s`` (Coggan's L1-L7), ``best_power_w`` (duration s -> W, for
      :data:`BEST_EFFORTS_S` that fit in the ride).
    * ``thresholds``: each threshold used, name -> :class:`sportlab.athlete.Threshold` (value,
      day measured, source: ``"profile.toml"`` or ``"estimate: ..."``).
    * ``problems``: what was left out and why (e.g. a long power dropout).
    """

    file: str
    start: datetime
    date: date
    sport: str | None
    duration_s: float
    moving_time_s: float
    distance_m: float | None
    avg_hr_bpm: float | None
    max_hr_bpm: float | None
    trimp_edwards: float | None
    time_in_hr_zones_s: dict[str, float]
    avg_power_w: float | None
    max_power_w: float | None
    weighted_power_w: float | None
    intensity: float | None
    stress_score: float | None
    time_in_power_zones_s: dict[str, float]
    best_power_w: dict[int, float]
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready: times as ISO 8601 text, thresholds as {value, measured, source}."""
        row = asdict(self)
        row["start"] = self.start.isoformat()
        row["date"] = self.date.isoformat()
        for threshold in row["thresholds"].values():
            if threshold["measured"] is not None:
                threshold["measured"] = threshold["measured"].isoformat()
        row["best_power_w"] = {str(k): v for k, v in self.best_power_w.items()}
        return row


def summarize_session(
    path: str | Path | pd.DataFrame,
    profile: Profile | None = None,
    *,
    name: str | None = None,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
) -> SessionSummary:
    """Summarise one recording (a path, or a frame from :func:`sportlab.read_activity`).

    Raises :class:`sportlab.ActivityReadError` for a file that cannot be read. Implausible
    samples (:mod:`sportlab.plausible`) are gaps, never averaged in. A metric that
    sportlab refuses for this recording (a power dropout longer than ``max_dropout_s``, ...) is
    left None and named in ``problems``; the rest of the row is still given. ``pause_gap_s``
    and ``max_dropout_s`` go to every metric, as in :func:`sportlab.metrics.to_1hz`: pass a
    larger ``max_dropout_s`` to interpolate across a dropout a problem names.
    """
    if isinstance(path, pd.DataFrame):
        # read_activity cleans what it reads; a frame built otherwise is cleaned here.
        frame = clean_frame(forwards(path, what=name or "frame"))  # type: ignore[arg-type]
        file = name or ""
    else:
        frame, file = read_activity(path), name or Path(path).name
    profile = profile or Profile()
    index = frame.index
    start = index[0].to_pydatetime()
    row: dict = {
        "file": file,
        "start": start,
        "date": start.date(),
        "sport": frame.attrs.get("sport"),
        "duration_s": float((index[-1] - index[0]).total_seconds()),
        "moving_time_s": moving_time_s(frame, pause_gap_s=pause_gap_s),
        "distance_m": _max(frame, "distance_m"),
        "thresholds": {},
        "problems": [],
    }
    gaps = {"pause_gap_s": pause_gap_s, "max_dropout_s": max_dropout_s}
    row.update(_heart_rate(frame, profile, row, gaps))
    row.update(_power(frame, profile, row, gaps))
    return SessionSummary(**row)


def _max(frame: pd.DataFrame, column: str) -> float | None:
    if column not in frame or not frame[column].notna().any():
        return None
    return float(frame[column].max())


def _heart_rate(frame: pd.DataFrame, profile: Profile, row: dict, gaps: dict) -> dict:
    out: dict = {"avg_hr_bpm": None, "max_hr_bpm": None, "trimp_edwards": None,
                 "time_in_hr_zones_s": {}}
    if "heart_rate_bpm" not in frame or not frame["heart_rate_bpm"].notna().any():
        return out
    hr = frame["heart_rate_bpm"]
    # Each second counts once: the plain mean of a smart-recorded ride's samples was 160 bpm
    # where the head unit and the 1-s recording say 165 (samples are taken when HR changes).
    per_s, _ = per_second(hr, None, **gaps)
    out["avg_hr_bpm"] = float(np.nanmean(per_s))
    out["max_hr_bpm"] = float(hr.max())
    hr_max = profile.hr_max_bpm or Threshold(
        out["max_hr_bpm"], None, "estimate: highest heart rate in this recording")
    row["thresholds"]["hr_max_bpm"] = hr_max
    try:
        out["trimp_edwards"] = trimp_edwards(hr, hr_max.value, **gaps)
        zones = time_in_zones(hr, hr_zones("hrmax", hr_max=hr_max.value), **gaps)
        out["time_in_hr_zones_s"] = {str(k): float(v) for k, v in zones.items()}
    except ValueError as exc:
        row["problems"].append(f"heart-rate load left out: {exc}")
    return out


def _power(frame: pd.DataFrame, profile: Profile, row: dict, gaps: dict) -> dict:
    out: dict = {"avg_power_w": None, "max_power_w": None, "weighted_power_w": None,
                 "intensity": None, "stress_score": None, "time_in_power_zones_s": {},
                 "best_power_w": {}}
    if "power_w" not in frame or not (frame["power_w"] > 0).any():
        return out
    power = frame["power_w"]
    out["max_power_w"] = float(power.max())
    try:
        wp = weighted_power(power, **gaps)
        best = mean_max_power(power, [d for d in BEST_EFFORTS_S], **gaps)
    except ValueError as exc:  # e.g. a long mid-ride dropout: named, not guessed
        row["problems"].append(f"power left out: {exc}")
        return out
    out["avg_power_w"] = float(to_1hz(power, pauses="drop", **gaps).mean())
    out["weighted_power_w"] = wp
    out["best_power_w"] = {int(d): float(w) for d, w in best.items()}
    if profile.ftp_w is not None:
        ftp = profile.ftp_w
        row["thresholds"]["ftp_w"] = ftp
        out["intensity"] = float(intensity(wp, ftp.value))
        out["stress_score"] = float(stress_score(row["moving_time_s"], wp, ftp.value))
        zones = time_in_zones(power, power_zones(ftp.value), lower_col="lower_w", **gaps)
        out["time_in_power_zones_s"] = {str(k): float(v) for k, v in zones.items()}
    return out


__all__ = ["BEST_EFFORTS_S", "SessionSummary", "summarize_session"]
