"""What a recorded sample can be: bounds per channel, so bad samples are never averaged in.

File formats allow values no human produces (FIT stores power as an unsigned 16-bit field, so a
corrupt record reads 65 535 W; a CSV or a hand-built Series can hold -50 W or ``inf``). One such
sample moves a 30-s weighted power by hundreds of watts, and a negative one pulls an average down
silently. Every metric that takes a recorded channel, and :func:`sportlab.read_activity`, passes
it through :func:`clean`: a sample outside its channel's bounds (or not finite) becomes missing
(NaN), i.e. a sensor dropout, handled as every dropout is (:mod:`sportlab.resample`: short ones
interpolated, a long one refused with a ValueError naming ``max_dropout_s``), and an
:class:`ImplausibleSampleWarning` says how many samples of which channel were dropped and why.
``on_implausible="raise"`` refuses instead, with :class:`ImplausibleSampleError`.

The bounds (inclusive) and where they come from, in :data:`BOUNDS`:

* ``power_w`` 0-3000 W: power is never negative (a crank cannot be pedalled backwards into
  the meter); world-class track sprinters' maximal power is about 1600 W on an ergometer
  (Dorel S et al. Int J Sports Med 2005;26:739-746) and the highest instantaneous peaks
  reported for them are around 2500 W, so 3000 W is beyond any human's.
* ``heart_rate_bpm`` 25-250 bpm: endurance athletes' resting heart rates reach the low 30s
  (D'Souza A et al. Nat Commun 2014;5:3775), and maximal heart rates fall around
  ``208 - 0.7 x age`` with an SD of about 10 bpm (Tanaka H et al. JACC 2001;37:153-156), so
  no exercising adult is above 250 bpm. 0 bpm, which some straps send when they lose contact,
  is a dropout, not a heart rate.
* ``cadence_rpm`` 0-300 rpm: sprinters' cadence at peak power is about 130 rpm and their
  extrapolated unloaded maximum about 250 rpm (Dorel et al. 2005); running cadence is counted
  per leg (FIT), under 130.
* ``speed_m_s`` 0-75 m/s (270 km/h): beyond road descents (~130 km/h), downhill ski racing
  (~160 km/h) and the speed-skiing record (~255 km/h); a speed is never negative.
* ``distance_m`` 0-7 000 km, and a step of at most 75 m/s (``speed_m_s``'s bound) between
  samples: a recording's *cumulative* distance. 7 000 km is beyond the longest race ridden in
  one go (the Trans Am Bike Race, about 6 800 km over two weeks or more). A cumulative channel
  is checked by its steps too (:func:`clean` with ``"distance_m"``), because one corrupt
  sample becomes the session's distance (the largest value) or shifts every sample after it:

  - a sample that steps away from the samples either side (a spike to 10 000 km, a reset to
    0 m for one record), i.e. backwards or faster than 75 m/s, is missing (a dropout);
  - a step that stays (the distance restarts from 0 m mid-recording, or jumps by 1 000 km and
    counts on from there) counts as no distance: the samples after it are moved to continue
    from the sample before. The most lost is the riding of that one step.

  A step's speed is its distance over its time, the time taken as at least 1 s (recordings'
  times are whole seconds). The bound is the speed channel's, the same for every sport: the
  sport a file names is often missing or not one (Strava's GPX says ``1``), and a tighter bound
  for running (Bolt's 12.4 m/s) would cut real GPS-derived steps of a mislabelled ride.
* ``altitude_m`` -500 to 9000 m: the lowest land (Dead Sea shore, -430 m) to above Everest
  (8849 m).
* ``latitude_deg`` -90 to 90, ``longitude_deg`` -180 to 180: the WGS 84 ranges.
* ``rr_ms`` 250-2500 ms: RR intervals of heart rates between 24 and 240 bpm, the range the
  heart-rate bounds above allow (Task Force of the ESC/NASPE, Circulation 1996;93:1043-1065,
  requires artefact-free NN intervals).
* ``ln_rmssd`` 0 to ln 2250 (7.72): an rMSSD of at least 1 ms (a negative ln rMSSD is a broken
  recording, not a morning; resting values in Nunan D et al. PACE 2010;33:1407-1417 are tens
  of ms) and at most 2250 ms, the largest successive difference the ``rr_ms`` bounds allow.

Checking costs two passes (minimum and maximum) over a clean channel, and a difference with its
minimum and maximum more over a cumulative one (its times are looked at only when a step is
longer than 75 m: a pause, or a smart recording's sparse samples); only a channel with a bad
sample is copied.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

#: channel -> (lowest, highest) accepted value, inclusive; sources in the module docstring.
BOUNDS: dict[str, tuple[float, float]] = {
    "power_w": (0.0, 3000.0),
    "heart_rate_bpm": (25.0, 250.0),
    "cadence_rpm": (0.0, 300.0),
    "speed_m_s": (0.0, 75.0),
    "distance_m": (0.0, 7_000_000.0),
    "altitude_m": (-500.0, 9000.0),
    "latitude_deg": (-90.0, 90.0),
    "longitude_deg": (-180.0, 180.0),
    "rr_ms": (250.0, 2500.0),
    "ln_rmssd": (0.0, math.log(2250.0)),
}

#: Cumulative channels -> the channel bounding the speed at which they may grow (per second).
CUMULATIVE = {"distance_m": "speed_m_s"}

_ANY_FINITE = (-float(np.finfo(np.float64).max), float(np.finfo(np.float64).max))
OnImplausible = Literal["gap", "raise"]
_T = TypeVar("_T", pd.Series, np.ndarray)


class ImplausibleSampleWarning(UserWarning):
    """Samples outside their channel's bounds (or not finite) were treated as missing."""


class ImplausibleSampleError(ValueError):
    """A channel has samples outside its bounds and the caller asked to refuse them."""

    def __init__(self, channel: str, message: str) -> None:
        self.channel = channel
        super().__init__(message)


def _describe(channel: str, data: np.ndarray, bad: np.ndarray) -> str:
    low, high = BOUNDS.get(channel, _ANY_FINITE)
    values = data[bad]
    kinds = []
    if np.isinf(values).any():
        kinds.append("infinite")
    finite = values[np.isfinite(values)]
    if (finite < low).any():
        kinds.append(f"below {low:g}")
    if (finite > high).any():
        kinds.append(f"above {high:g}")
    first = int(np.flatnonzero(bad)[0])
    accepted = (f"accepted {low:g} to {high:g}; sources in sportlab.plausible"
                if channel in BOUNDS else "a number must be finite")
    return (
        f"{int(bad.sum())} sample(s) of {channel} are {' or '.join(kinds)} ({accepted}), the "
        f"first at position {first}: {float(values[0])!r}"
    )


def within(values: np.ndarray, channel: str) -> bool:
    """Whether every sample of a non-empty array is a number within ``channel``'s bounds (one
    min and one max pass; False if any sample is NaN, which the caller then looks at)."""
    low, high = BOUNDS.get(channel, _ANY_FINITE)
    return bool(low <= values.min() and values.max() <= high)


def implausible(values: np.ndarray, channel: str) -> np.ndarray | None:
    """Boolean mask of the samples outside ``channel``'s bounds or infinite (NaN is fine), or
    None when there are none (the common case, found with a min and a max pass only). A
    channel without bounds only has its infinite samples marked."""
    low, high = BOUNDS.get(channel, _ANY_FINITE)
    if values.size == 0:
        return None
    if within(values, channel):
        return None
    with np.errstate(invalid="ignore"):
        bad = (values < low) | (values > high)  # inf is outside; NaN compares False
    return bad if bad.any() else None


def clean(
    values: _T,
    channel: str,
    *,
    on_implausible: OnImplausible = "gap",
    stacklevel: int = 3,
) -> _T:
    """``values`` with every implausible sample of ``channel`` made NaN (missing).

    Returns the input itself when every sample is plausible. With ``on_implausible="gap"`` an
    :class:`ImplausibleSampleWarning` names the channel, the count and the bounds; with
    ``"raise"``, :class:`ImplausibleSampleError`. A channel without bounds (a name not in
    :data:`BOUNDS`) only has its infinite samples treated so. A cumulative channel
    (:data:`CUMULATIVE`: ``distance_m``) is also checked step by step, as the module docstring
    says; a Series' steps are timed by its index (times running forwards, as
    :mod:`sportlab.clock` leaves them), an array's at 1 s per sample.
    """
    if on_implausible not in ("gap", "raise"):
        raise ValueError(f"on_implausible must be 'gap' or 'raise', got {on_implausible!r}")
    data = values.to_numpy(dtype="float64") if isinstance(values, pd.Series) else np.asarray(
        values, dtype="float64")
    bad = implausible(data, channel)
    notes = []
    fixed = data
    if bad is not None:
        notes.append(f"{_describe(channel, data, bad)}: treated as missing (a sensor dropout)")
        fixed = np.where(bad, np.nan, data)
    if channel in CUMULATIVE:
        stepped = _cumulative_steps(fixed, values, channel)
        if stepped is not None:
            fixed, step_notes = stepped
            notes.extend(step_notes)
    if not notes:
        return values
    if on_implausible == "raise":
        raise ImplausibleSampleError(channel, "; ".join(notes))
    warnings.warn("; ".join(notes), ImplausibleSampleWarning, stacklevel=stacklevel)
    if isinstance(values, pd.Series):
        return pd.Series(fixed, index=values.index, name=values.name)  # type: ignore[return-value]
    return fixed  # type: ignore[return-value]


def _seconds(values: pd.Series | np.ndarray, size: int) -> np.ndarray:
    """Each sample's time in seconds from the first: by a Series' time index, else 1 s apart."""
    index = getattr(values, "index", None)
    if isinstance(index, pd.DatetimeIndex | pd.TimedeltaIndex) and size:
        # From the integer ticks: index arithmetic in pandas cost 8 times the whole check.
        ticks = index.asi8
        return (ticks - ticks[0]) / (np.timedelta64(1, "s") / np.timedelta64(1, index.unit))
    return np.arange(size, dtype="float64")


def _steps_plausible(values: np.ndarray, seconds: np.ndarray, top_speed: float) -> bool:
    """Whether every step is forwards and at most ``top_speed`` (False with a NaN)."""
    step = np.diff(values)
    # A step's time is at least 1 s: timestamps are whole seconds in FIT, GPX and TCX.
    limit = np.maximum(np.diff(seconds), 1.0)
    limit *= top_speed
    with np.errstate(invalid="ignore"):
        return bool((step >= 0).all() and (step <= limit).all())


def _cumulative_steps(
    data: np.ndarray, values: pd.Series | np.ndarray, channel: str
) -> tuple[np.ndarray, list[str]] | None:
    """``data`` (the channel ``values``, timed as :func:`_seconds` says) with its implausible
    steps handled (module docstring), and what was done; None when every step is plausible."""
    top_speed = BOUNDS[CUMULATIVE[channel]][1]
    step = np.diff(data)
    # The common case, a diff, a min and a max: no NaN, and no step back or longer than
    # top_speed metres, which no step of 1 s or more is too fast for.
    if not step.size or (step.min() >= 0 and step.max() <= top_speed):
        return None
    seconds = _seconds(values, data.size)
    if _steps_plausible(data, seconds, top_speed):
        return None
    where = np.flatnonzero(~np.isnan(data))
    if where.size < 2 or _steps_plausible(data[where], seconds[where], top_speed):
        return None
    values, times = data[where].tolist(), seconds[where].tolist()

    def plausible(a: int, b: int) -> bool:
        return 0.0 <= values[b] - values[a] <= top_speed * max(times[b] - times[a], 1.0)

    # Walk the samples from the last one accepted (rare: only a channel with a bad step gets
    # here). A sample off that the next one is not is a spike; an offset that stays is a shift.
    n = len(values)
    spikes: list[int] = []
    shifts: list[int] = []
    corrected = list(values)
    anchor, offset = 0, 0.0
    # The first sample has no sample before it: it is the one off when the next two steps hold.
    if n > 3 and not plausible(0, 1) and plausible(1, 2) and plausible(2, 3):
        spikes.append(0)
        anchor = 1
    for k in range(anchor + 1, n):
        if not plausible(anchor, k):
            if k + 1 == n or plausible(anchor, k + 1):
                spikes.append(k)
                continue
            shifts.append(k)
            offset += values[anchor] - values[k]
        corrected[k] = values[k] + offset
        anchor = k
    kept = np.ones(n, dtype=bool)
    kept[spikes] = False
    fixed = data.copy()
    fixed[where[~kept]] = np.nan
    # Every kept step is >= 0; the running maximum only undoes the shifts' rounding (1e-12 m).
    fixed[where[kept]] = np.maximum.accumulate(np.asarray(corrected)[kept])
    notes = []
    if spikes:
        first = int(where[spikes[0]])
        notes.append(
            f"{len(spikes)} sample(s) of {channel} step away from the samples either side "
            f"(backwards or faster than {top_speed:g} m/s, sportlab.plausible), the first at "
            f"position {first}: {float(data[first])!r}: treated as missing (a sensor dropout)")
    if shifts:
        first = int(where[shifts[0]])
        notes.append(
            f"{len(shifts)} step(s) of {channel} go backwards or faster than {top_speed:g} m/s "
            f"and stay (sportlab.plausible), the first at position {first}: to "
            f"{float(data[first])!r}: counted as no distance (the samples after continue from "
            "the one before)")
    return fixed, notes


def clean_frame(
    frame: pd.DataFrame,
    columns: Iterable[str] | None = None,
    *,
    on_implausible: OnImplausible = "gap",
    stacklevel: int = 3,
) -> pd.DataFrame:
    """A ride's DataFrame with :func:`clean` applied to each column that has bounds.

    Returns the same frame when nothing is implausible, else a copy (``attrs`` kept)."""
    out = frame
    for column in columns if columns is not None else frame.columns:
        if column not in BOUNDS or column not in frame.columns:
            continue
        series = frame[column]
        cleaned = clean(series, column, on_implausible=on_implausible, stacklevel=stacklevel + 1)
        if cleaned is not series:  # only a channel with an implausible sample is copied
            if out is frame:
                out = frame.copy()
            out[column] = cleaned.to_numpy()
    return out


def require_finite(name: str, value: object, *, positive: bool = False,
                   allow_nan: bool = False, channel: str | None = None) -> None:
    """Refuse a number (or array) that is infinite, NaN (unless ``allow_nan``), or negative
    (zero too with ``positive``), with a ValueError naming the argument. With ``channel``, a
    value outside that channel's :data:`BOUNDS` is refused too (an HRmax of 400 bpm or an FTP
    of 5000 W is no human's, so zones and scores from it would be wrong numbers).

    Called on every metric's arguments, so the accepted case is a plain float comparison for a
    number and a min and a max pass for an array."""
    low, high = BOUNDS[channel] if channel is not None else (0.0, np.inf)
    if isinstance(value, float | int) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and (number > 0 if positive else number >= 0) and (
                low <= number <= high):
            return
    else:
        data = np.asarray(value, dtype="float64")
        if data.size:
            lowest, highest = data.min(), data.max()  # NaN if any is NaN
            if (lowest > 0 if positive else lowest >= 0) and highest < np.inf and (
                    low <= lowest and highest <= high):
                return
    _explain(name, value, positive=positive, allow_nan=allow_nan)
    if channel is not None:
        with np.errstate(invalid="ignore"):
            data = np.asarray(value, dtype="float64")
            if np.any((data < low) | (data > high)):
                what, unit = _DESCRIBED.get(channel, ("a value", ""))
                raise ValueError(f"{name} must be {what} of {low:g}-{high:g} {unit} "
                                 f"(sportlab.plausible.BOUNDS[{channel!r}]), got {value!r}")


#: The longest session, in minutes: a day (log.csv's ``minutes`` range, sportlab.athlete).
MAX_SESSION_MIN = 1440.0


def require_session_minutes(name: str, value: object) -> None:
    """Refuse a session duration (minutes) that is infinite, negative or longer than a day,
    naming the argument (NaN, not recorded, passes): 4500 is a 75-min session in seconds."""
    require_finite(name, value, allow_nan=True)
    with np.errstate(invalid="ignore"):
        if np.any(np.asarray(value, dtype="float64") > MAX_SESSION_MIN):
            raise ValueError(f"{name} must be at most {MAX_SESSION_MIN:g} min (a day), got "
                             f"{value!r}: minutes, not seconds?")


# How an argument checked against a channel's bounds is named in the error.
_DESCRIBED = {"heart_rate_bpm": ("a heart rate", "bpm"), "power_w": ("a power", "W")}


def _explain(name: str, value: object, *, positive: bool, allow_nan: bool) -> None:
    data = np.asarray(value, dtype="float64")
    if data.size == 0:
        raise ValueError(f"{name} is empty")
    nan = np.isnan(data)
    if nan.any() and not allow_nan:
        raise ValueError(f"{name} must be a number, got NaN in {value!r}")
    numbers = data[~nan]
    if not np.isfinite(numbers).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not (numbers > 0).all():
        raise ValueError(f"{name} must be positive, got {value!r}")
    if not positive and not (numbers >= 0).all():
        raise ValueError(f"{name} must be zero or positive, got {value!r}")


__all__ = [
    "BOUNDS",
    "CUMULATIVE",
    "MAX_SESSION_MIN",
    "ImplausibleSampleError",
    "ImplausibleSampleWarning",
    "clean",
    "clean_frame",
    "implausible",
    "require_finite",
    "require_session_minutes",
    "within",
]
