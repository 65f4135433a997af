"""Time that runs backwards or repeats: how a recording's clock problems are handled.

Head units correct their clock while recording (a GPS time fix, a time-zone or daylight-saving
change), so a FIT or TCX file can hold a sample whose time is *earlier* than the one before, or
the same time twice; an edited or merged GPX can have its points out of order. Sorting such a
recording by time silently interleaves two stretches of riding (an hour's jump back puts the
second hour on top of the first), and dropping repeated times loses riding. sportlab instead
handles each case one documented way and says so with a :class:`ClockWarning`:

* **FIT and TCX: the clock jumps back.** These files store samples in the order they were
  recorded, so that order is kept: each backward step is replaced by the recording's usual step
  (the median of its forward steps, 1 s for a 1-Hz file) and the samples *before* the jump are
  moved back by the difference, so the times after the last jump (the corrected clock) stand
  and no riding is lost or invented. The warning gives each jump's size and time.
* **Repeated timestamps.** A sample repeated exactly (TCX repeats each lap's boundary point) is
  one sample, dropped without a warning. Different samples with one time are averaged into one
  sample (as the 1-s grid does with several samples in one second), with a warning giving how
  many; the most riding this can lose is one second per repeat, which the warning says.
* **GPX: points out of order.** GPX points carry nothing but their times, so they are sorted by
  time, with a warning giving how many were out of order.
* **A Series or frame given to a metric** (not read with :func:`sportlab.read_activity`) whose
  timestamps go backwards is sorted by time, with a warning: it carries no other order. Call
  :func:`repair_clock` with ``order="recorded"`` first if its row order is the recording order.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd


class ClockWarning(UserWarning):
    """A recording's timestamps went backwards or repeated; the message says what was done."""


def _when(index: pd.DatetimeIndex | pd.TimedeltaIndex, position: int) -> str:
    return str(index[position])


def repair_clock(
    frame: pd.DataFrame,
    order: Literal["recorded", "time"] = "recorded",
    *,
    what: str = "recording",
    stacklevel: int = 2,
) -> pd.DataFrame:
    """``frame`` (rows in file order, a time index) with its clock made to run forwards.

    ``order="recorded"`` (FIT, TCX): backward jumps are undone keeping the row order;
    ``order="time"`` (GPX): rows are sorted by time. Then repeated timestamps are merged (exact
    repeats silently, different samples averaged). Each change issues a :class:`ClockWarning`
    naming ``what``. Returns the frame itself when its clock already runs forwards.
    """
    if order not in ("recorded", "time"):
        raise ValueError(f"order must be 'recorded' or 'time', got {order!r}")
    if frame.empty:
        return frame
    index = frame.index
    ticks = index.asi8
    steps = np.diff(ticks)
    if (steps > 0).all():
        return frame
    notes: list[str] = []
    if (steps < 0).any():
        back = np.flatnonzero(steps < 0)
        if order == "time":
            frame = frame.iloc[np.argsort(ticks, kind="stable")]
            notes.append(f"{back.size} sample(s) out of time order: sorted by time")
        else:
            forward = steps[steps > 0]
            one_second = 1_000_000_000 // _tick(index)
            usual = int(np.median(forward)) if forward.size else one_second
            fixed = steps.copy()
            fixed[back] = usual
            new = ticks[0] + np.concatenate([[0], np.cumsum(fixed)])
            new += ticks[-1] - new[-1]  # the times after the last jump stand
            jumps = ", ".join(
                f"{-steps[i] * _tick(index) / 1e9:g} s at {_when(index, i + 1)}"
                for i in back[:3]) + (" ..." if back.size > 3 else "")
            notes.append(
                f"the clock jumps back {back.size} time(s) ({jumps}): samples kept in recorded "
                "order, the earlier ones moved back so each jump is one usual step")
            frame = frame.copy()
            frame.index = _same_kind(index, new)
    frame = _merge_repeats(frame, notes)
    if notes:
        warnings.warn(f"{what}: " + "; ".join(notes), ClockWarning, stacklevel=stacklevel)
    return frame


def _same_kind(
    index: pd.DatetimeIndex | pd.TimedeltaIndex, ticks: np.ndarray
) -> pd.DatetimeIndex | pd.TimedeltaIndex:
    """An index like ``index`` (kind, unit, time zone, name) at the integer ``ticks``."""
    if isinstance(index, pd.TimedeltaIndex):
        return pd.TimedeltaIndex(ticks.astype(f"timedelta64[{index.unit}]"), name=index.name)
    naive = pd.DatetimeIndex(ticks.astype(f"datetime64[{index.unit}]"), name=index.name)
    return naive if index.tz is None else naive.tz_localize("UTC").tz_convert(index.tz)


def _tick(index: pd.DatetimeIndex | pd.TimedeltaIndex) -> int:
    """Nanoseconds per integer tick of the index."""
    return {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[index.unit]


def _merge_repeats(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    repeated = frame.index.duplicated(keep=False)
    if not repeated.any():
        return frame
    exact = frame.reset_index().duplicated(keep="first").to_numpy()  # same time, same values
    frame = frame[~exact]
    if not frame.index.has_duplicates:
        return frame
    clashes = int(frame.index.duplicated(keep="first").sum())
    merged = frame.groupby(level=0, sort=False).mean()
    merged.attrs = frame.attrs
    notes.append(
        f"{clashes} sample(s) repeat a timestamp with other values: averaged with the sample "
        f"at that time (at most {clashes} s of recording merged)")
    return merged


def forwards(
    values: pd.Series | pd.DataFrame, *, what: str = "series", stacklevel: int = 3
) -> pd.Series | pd.DataFrame:
    """A timestamped Series or frame sorted by time, with a :class:`ClockWarning` if it was not
    (a series given to a metric carries no other order). Returns the input when already sorted.
    """
    index = values.index
    if not isinstance(index, pd.DatetimeIndex | pd.TimedeltaIndex) or len(index) < 2:
        return values
    if index.is_monotonic_increasing:
        return values
    back = int((np.diff(index.asi8) < 0).sum())
    warnings.warn(
        f"{what}: timestamps go backwards {back} time(s): sorted by time (see sportlab.clock; "
        "for a recording in its recorded order use sportlab.clock.repair_clock first)",
        ClockWarning, stacklevel=stacklevel)
    return values.sort_index(kind="stable")


__all__ = ["ClockWarning", "forwards", "repair_clock"]
