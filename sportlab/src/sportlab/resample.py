"""Put a recorded channel on a regular 1-s grid by its timestamps: gaps, pauses and dropouts.

Head units record a sample every second, or "smart" (every 1-8 s, timestamped), stop the timer
for pauses, and lose a sensor now and then (the sample is there, the value is not). Every metric
that assumes a sample rate goes through :func:`resample_1hz`, which treats these cases the same
way everywhere:

* **Short gaps** (no sample for up to ``pause_gap_s`` = 10 s, e.g. smart recording) are filled
  by linear interpolation between the samples on either side: the timer was running.
* **Pauses** (no sample for longer than ``pause_gap_s``) are seconds where the timer was
  stopped. They are *not recorded*: NaN on the grid. Each metric says what it does with them.
* **Dropouts** (a sample whose value is NaN: the sensor lost contact) of up to
  ``max_dropout_s`` seconds between two valid values are filled by linear interpolation, like a
  short gap. A dropout at the start or end of a stretch of riding (before the sensor reconnects
  after a pause, or at the very start) has only one neighbour and is not recorded (NaN, like
  the pause next to it). A longer dropout in the middle raises :class:`ValueError`, or with
  ``long_dropouts="nan"`` is left not recorded.

Why: the pause threshold is longer than any smart-recording interval (Garmin's smart recording
writes a sample every 1-8 s), so only a stopped timer leaves a longer gap. The head units compute
their session summary over timer time (FIT SDK, Profile.xlsx: ``session.total_timer_time``
"excludes pauses"), which is what sportlab's weighted power is checked against on real files.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from sportlab._typing import ArrayLike
from sportlab.clock import forwards
from sportlab.plausible import clean

# Longer than any "smart recording" interval (Garmin records every 1-8 s), so a gap this long
# means the timer was stopped.
PAUSE_GAP_S = 10.0
# A sensor dropout this short is bridged by interpolation, like a smart-recording gap.
MAX_DROPOUT_S = 10.0
_TICKS_PER_S = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def sample_times_s(values: ArrayLike | pd.DataFrame, sample_s: float | None = None) -> np.ndarray:
    """Seconds since the first sample: from the index if it has times, else ``i * sample_s``.

    A Series (or a ride's DataFrame) with a DatetimeIndex or TimedeltaIndex carries its own
    timing, so ``sample_s`` must not be given too. Any other input is taken to be sampled
    every ``sample_s`` seconds (default 1 s).
    """
    if isinstance(values, pd.Series | pd.DataFrame) and isinstance(
        values.index, pd.DatetimeIndex | pd.TimedeltaIndex
    ):
        if sample_s is not None:
            raise ValueError(
                "sample_s is for plain arrays; this series has timestamps, which give the rate"
            )
        index = values.index
        if len(index) == 0:
            return np.zeros(0)
        ticks = index.asi8  # integers in the index's own unit (pandas 3 keeps s, ms, us or ns)
        return (ticks - ticks[0]) / _TICKS_PER_S[index.unit]
    step = 1.0 if sample_s is None else float(sample_s)
    if not step > 0 or not np.isfinite(step):
        raise ValueError(f"sample_s must be a positive number of seconds, got {sample_s!r}")
    return np.arange(len(values)) * step


def is_1hz_with_pauses(index: pd.DatetimeIndex | pd.TimedeltaIndex) -> bool:
    """Whether every step between timestamps is exactly 1 s or a pause (> ``PAUSE_GAP_S``)."""
    per_s = int(_TICKS_PER_S[index.unit])
    steps = np.diff(index.asi8)
    other = steps[steps != per_s]  # few or none: check only those against the pause threshold
    return bool(np.all(other > PAUSE_GAP_S * per_s))


def moving_time_s(
    values: ArrayLike | pd.DataFrame,
    sample_s: float | None = None,
    pause_gap_s: float = PAUSE_GAP_S,
) -> float:
    """Recorded (moving) time in seconds: elapsed time minus pauses, as the head unit's timer.

    The sum of the steps between consecutive samples, leaving out steps longer than
    ``pause_gap_s`` (a stopped timer). This is the duration the head unit stores as timer time
    and the one the session stress score is defined over (Allen & Coggan 2010, ch. 7).
    """
    if isinstance(values, pd.Series | pd.DataFrame):
        values = forwards(values, what="moving_time_s")  # a backward step is not negative time
    steps = np.diff(sample_times_s(values, sample_s))
    return float(steps[steps <= pause_gap_s].sum())


def resample_1hz(
    values: ArrayLike, sample_s: float | None = None, *, name: str = "values", **options: Any
) -> pd.Series:
    """One value per second from the first to the last sample; NaN where nothing was recorded.

    Samples within one second are averaged; short gaps and short dropouts are interpolated;
    pauses and edge dropouts are NaN (see the module docstring for the rules). ``name`` is used
    in error messages and as the result's name; ``options`` are :func:`grid_1hz`'s
    (``pause_gap_s``, ``max_dropout_s``, ``long_dropouts``). A timestamped input keeps a 1-s
    DatetimeIndex (or TimedeltaIndex); a plain input gets a RangeIndex of elapsed seconds.
    """
    grid, start = grid_1hz(values, sample_s, name=name, **options)
    return wrap_1hz(grid, start, name)


def grid_1hz(
    values: ArrayLike,
    sample_s: float | None = None,
    *,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
    long_dropouts: Literal["raise", "nan"] = "raise",
    name: str = "values",
) -> tuple[np.ndarray, pd.Timestamp | pd.Timedelta | None]:
    """:func:`resample_1hz` as a NumPy array and the first sample's time (None without times).

    ``pause_gap_s``: a step between samples longer than this is a pause. ``max_dropout_s``: the
    longest run of seconds without a value that is interpolated between two valid values.
    ``long_dropouts``: what a longer run does, ``"raise"`` (ValueError) or ``"nan"`` (left not
    recorded). ``name`` is the channel: a sample outside its bounds in
    :data:`sportlab.plausible.BOUNDS` (any infinite sample, for other names) is a dropout, with
    an :class:`sportlab.plausible.ImplausibleSampleWarning`.
    """
    # inf is meaningful for both (never a pause; bridge any dropout); NaN is refused.
    if not pause_gap_s > 0:
        raise ValueError(f"pause_gap_s must be positive, got {pause_gap_s}")
    if not max_dropout_s >= 0:
        raise ValueError(f"max_dropout_s must be zero or positive, got {max_dropout_s}")
    if long_dropouts not in ("raise", "nan"):
        raise ValueError(f"long_dropouts must be 'raise' or 'nan', got {long_dropouts!r}")
    if isinstance(values, pd.Series):
        values = forwards(values, what=name, stacklevel=4)  # sportlab.clock: sorted, warned
    times = sample_times_s(values, sample_s)
    # Samples no human produces (negative power, inf, ...) are dropouts: sportlab.plausible.
    data = clean(np.asarray(values, dtype="float64"), name, stacklevel=4)
    start = None
    if isinstance(values, pd.Series) and _has_times(values) and len(data):
        start = values.index[0]
    if data.size == 0:
        return data, start
    steps = np.diff(times)
    known = ~np.isnan(data)
    # The common case (a 1-Hz recording without gaps or dropouts) needs no work at all.
    if times[0] == 0.0 and known.all() and np.all(steps == 1.0):
        return data, start

    second = np.floor(times + 1e-9).astype(np.int64)
    n = int(second[-1]) + 1
    if known.all() and np.all((steps == 1.0) | (steps > pause_gap_s)) and times[0] == 0.0:
        # 1 Hz with pauses only (the second most common case): place the samples, no averaging.
        grid = np.full(n, np.nan)
        grid[second] = data
        return grid, start
    counts = np.bincount(second[known], minlength=n)
    sums = np.bincount(second[known], weights=data[known], minlength=n)
    grid = np.full(n, np.nan)
    has_value = counts > 0
    grid[has_value] = sums[has_value] / counts[has_value]

    # Seconds strictly inside a gap between samples longer than pause_gap_s: the timer stopped.
    sampled = second[np.concatenate([[True], second[1:] != second[:-1]])]
    pause = np.diff(sampled) > pause_gap_s
    edges = np.zeros(n + 1, dtype=np.int64)
    edges[sampled[:-1][pause] + 1] += 1
    edges[sampled[1:][pause]] -= 1
    running = np.cumsum(edges[:-1]) == 0

    missing = running & ~has_value
    if missing.any():
        # Number the stretches of riding between pauses: a dropout is only bridged within one.
        stretch = np.cumsum(running & ~np.concatenate([[False], running[:-1]]))
        seconds = np.arange(n)
        before = np.maximum.accumulate(np.where(has_value, seconds, -1))
        after = np.minimum.accumulate(np.where(has_value, seconds, n)[::-1])[::-1]
        inner = (
            missing
            & (before >= 0)
            & (after < n)
            & (stretch[np.clip(before, 0, n - 1)] == stretch)
            & (stretch[np.clip(after, 0, n - 1)] == stretch)
        )
        too_long = inner & (after - before - 1 > max_dropout_s)
        if too_long.any() and long_dropouts == "raise":
            first = int(np.flatnonzero(too_long)[0])
            length = int(after[first] - before[first] - 1)
            where = start + pd.Timedelta(seconds=first) if start is not None else first
            raise ValueError(
                f"{name} has no value for {length} s from {where} while recording (a sensor "
                f"dropout longer than max_dropout_s={max_dropout_s:g} s): pass a larger "
                "max_dropout_s= (every sportlab function that resamples accepts it) to "
                "interpolate across it, or cut the ride there"
            )
        fill = inner & ~too_long
        if fill.any():
            grid[fill] = np.interp(seconds[fill], seconds[has_value], grid[has_value])
    return grid, start


def _has_times(values: ArrayLike) -> bool:
    return isinstance(values, pd.Series) and isinstance(
        values.index, pd.DatetimeIndex | pd.TimedeltaIndex
    )


def wrap_1hz(grid: np.ndarray, start: pd.Timestamp | pd.Timedelta | None, name: str) -> pd.Series:
    """A 1-s grid from :func:`grid_1hz` as a Series on its time index."""
    if start is None:
        index: pd.Index = pd.RangeIndex(grid.size, name="elapsed_s")
    elif isinstance(start, pd.Timedelta):
        index = pd.timedelta_range(start, periods=grid.size, freq="s", name="elapsed")
    else:
        index = pd.date_range(start, periods=grid.size, freq="s", name="timestamp")
    return pd.Series(grid, index=index, name=name, dtype="float64")


__all__ = [
    "MAX_DROPOUT_S",
    "PAUSE_GAP_S",
    "grid_1hz",
    "is_1hz_with_pauses",
    "moving_time_s",
    "resample_1hz",
    "sample_times_s",
    "wrap_1hz",
]
