"""Training-load models: PMC (fitness/fatigue/form), ACWR, session-RPE load, monotony, strain.

All functions take a *daily* load series (arbitrary units: TRIMP, session-RPE AU, stress score).
A series with a DatetimeIndex is summed per calendar day and missing days are filled with 0,
because a day with no session is a rest day (zero load), not a missing measurement.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from sportlab._typing import ArrayLike
from sportlab.plausible import require_finite, require_session_minutes


def as_daily(load: ArrayLike) -> pd.Series:
    """Return ``load`` as one value per consecutive day (rest days = 0), as float64.

    A DatetimeIndex is summed per calendar day over the full date range; any other input is taken
    to already be one value per consecutive day. NaN counts as 0 (no recorded session). A negative
    or infinite load raises ValueError: no session has one, and one such day would move CTL, ATL,
    ACWR, monotony and strain for weeks (-500 AU made a week's fitness negative).
    """
    if isinstance(load, pd.Series) and isinstance(load.index, pd.DatetimeIndex):
        daily = load.astype("float64").resample("D").sum(min_count=1)
    else:
        daily = pd.Series(load, dtype="float64")
    daily = daily.fillna(0.0).rename("load")
    if daily.size:
        require_finite("daily load", daily.to_numpy())
    return daily


def _require_days(name: str, days: float, least: int = 1) -> None:
    """A window or time constant in days: a finite number of at least ``least``."""
    require_finite(name, days, positive=True)
    if days < least:
        raise ValueError(f"{name} must be at least {least} day(s), got {days}")


def _ewma_from(values: np.ndarray, alpha: float, initial: float) -> np.ndarray:
    """y[t] = y[t-1] + alpha * (x[t] - y[t-1]) with y[-1] = initial, as one IIR filter pass."""
    if values.size == 0:
        return values.copy()
    decay = 1.0 - alpha
    out, _ = lfilter([alpha], [1.0, -decay], values, zi=[decay * initial])
    return out


def pmc(
    daily_load: ArrayLike,
    ctl_days: float = 42,
    atl_days: float = 7,
    form: Literal["exponential", "linear"] = "exponential",
    ctl0: float = 0.0,
    atl0: float = 0.0,
) -> pd.DataFrame:
    """Performance Management Chart: chronic (CTL) and acute (ATL) load and balance (TSB).

    Both are exponentially weighted averages of daily load updated as
    ``X[t] = X[t-1] + k * (load[t] - X[t-1])`` with a time constant tau (days):

    * ``form="exponential"`` (GoldenCheetah "LTS/STS"): ``k = 1 - exp(-1/tau)``, the exact
      discretisation of a first-order decay with time constant tau (Banister's fitness/fatigue
      kernels, Banister et al. 1975; Coggan's PMC as implemented in GoldenCheetah).
    * ``form="linear"`` (TrainingPeaks CTL/ATL): ``k = 1/tau``, the first-order approximation.
      For tau = 42 the two differ by about 1 %; for tau = 7 by about 7 %.

    TSB uses the TrainingPeaks convention *yesterday's* ``CTL - ATL``: form on the morning of day t,
    before that day's training. ``ctl0``/``atl0`` seed the day before the first day.

    Returns a DataFrame with columns ``ctl``, ``atl``, ``tsb`` on the daily index.
    """
    daily = as_daily(daily_load)
    values = daily.to_numpy()

    _require_days("ctl_days", ctl_days, 0)
    _require_days("atl_days", atl_days, 0)
    require_finite("ctl0", ctl0)
    require_finite("atl0", atl0)

    def rate(tau: float) -> float:
        if form == "exponential":
            return 1.0 - np.exp(-1.0 / tau)
        if form == "linear":
            return 1.0 / tau
        raise ValueError(f"form must be 'exponential' or 'linear', got {form!r}")

    ctl = _ewma_from(values, rate(ctl_days), ctl0)
    atl = _ewma_from(values, rate(atl_days), atl0)
    tsb = np.concatenate([[ctl0 - atl0], (ctl - atl)[:-1]]) if values.size else ctl - atl
    return pd.DataFrame({"ctl": ctl, "atl": atl, "tsb": tsb}, index=daily.index)


def acwr(
    daily_load: ArrayLike,
    acute_days: int = 7,
    chronic_days: int = 28,
    method: Literal["rolling", "ewma"] = "rolling",
) -> pd.DataFrame:
    """Acute:chronic workload ratio, with the acute and chronic loads it divides.

    * ``method="rolling"``: rolling means over the last ``acute_days`` and ``chronic_days``
      (coupled: the chronic window contains the acute one; Hulin et al. 2014, Br J Sports Med
      48:708). NaN until the chronic window is full.
    * ``method="ewma"``: exponentially weighted moving averages (Williams S, West S, Cross MJ,
      Stokes KA. Better way to determine the acute:chronic workload ratio? Br J Sports Med
      2017;51:209-210): ``EWMA[t] = load[t] * lam + (1 - lam) * EWMA[t-1]`` with
      ``lam = 2 / (N + 1)``. Williams et al. do not say how to start the recursion; here both
      averages are *seeded with the first day's load* (``EWMA[0] = load[0]``, as pandas
      ``ewm(adjust=False)``), and the ratio is reported as NaN for the first ``chronic_days - 1``
      days while the seed still dominates the chronic average.

    Caution: the ratio is a descriptive heuristic. Impellizzeri et al. showed that its
    association with injury is largely a statistical artefact (mathematical coupling, ratio
    scaling, arbitrary windows) and advised against using it to predict injury or prescribe load:
    Impellizzeri FM, Tenan MS, Kempton T, Novak A, Coutts AJ. Acute:chronic workload ratio:
    conceptual issues and fundamental pitfalls. Int J Sports Physiol Perform 2020;15:907-913;
    Impellizzeri FM, Woodcock S, Coutts AJ, Fanchini M, McCall A, Vigotsky AD. What role do
    chronic workloads play in the acute to chronic workload ratio? Time to dismiss ACWR and its
    underlying theory. Sports Med 2021;51:581-592. The 0.8-1.3 "sweet spot" is not a validated
    threshold.

    Returns a DataFrame with columns ``acute``, ``chronic``, ``acwr``.
    """
    _require_days("acute_days", acute_days)
    _require_days("chronic_days", chronic_days)
    if chronic_days <= acute_days or int(acute_days) != acute_days or (
            int(chronic_days) != chronic_days):
        raise ValueError(f"need whole days 1 <= acute_days < chronic_days, got {acute_days} and "
                         f"{chronic_days}")
    daily = as_daily(daily_load)
    if method == "rolling":
        acute = daily.rolling(acute_days, min_periods=acute_days).mean()
        chronic = daily.rolling(chronic_days, min_periods=chronic_days).mean()
    elif method == "ewma":
        acute = daily.ewm(alpha=2.0 / (acute_days + 1), adjust=False).mean()
        chronic = daily.ewm(alpha=2.0 / (chronic_days + 1), adjust=False).mean()
    else:
        raise ValueError(f"method must be 'rolling' or 'ewma', got {method!r}")
    # 0/0 (no load at all yet) is undefined rather than a ratio of 0 or 1.
    ratio = acute / chronic.where(chronic > 0)
    ratio.iloc[: chronic_days - 1] = np.nan
    return pd.DataFrame({"acute": acute, "chronic": chronic, "acwr": ratio})


def session_rpe_load(rpe: ArrayLike | float, duration_min: ArrayLike | float) -> np.ndarray | float:
    """Session-RPE training load in arbitrary units: CR-10 RPE x session duration (min).

    Foster C et al. A new approach to monitoring exercise training. J Strength Cond Res
    2001;15(1):109-115. RPE is asked about 30 min after the session on the CR-10 scale (0-10).
    A duration outside 0-1440 min (a session within a day, as log.csv's ``minutes``) or an
    RPE off the scale raises ValueError; NaN (not recorded) stays NaN.
    """
    rpe_arr = np.asarray(rpe, dtype=float)
    require_session_minutes("duration_min", duration_min)
    if np.any((rpe_arr < 0) | (rpe_arr > 10)):
        raise ValueError("session RPE must be on the CR-10 scale (0-10)")
    result = rpe_arr * np.asarray(duration_min, dtype=float)
    return float(result) if result.ndim == 0 else result


def monotony(daily_load: ArrayLike, window_days: int = 7) -> pd.Series:
    """Training monotony: mean daily load / standard deviation of daily load over a week.

    Foster C. Monitoring training in athletes with reference to overtraining syndrome. Med Sci
    Sports Exerc 1998;30(7):1164-1168. Rest days count as zero load. The SD is the sample SD
    (ddof=1, as spreadsheet STDEV); a week of identical non-zero loads gives ``inf``, a week with
    no load gives NaN. ``window_days`` is a whole number of at least 2 (an SD needs two days).
    """
    _require_days("window_days", window_days, 2)
    if int(window_days) != window_days:
        raise ValueError(f"window_days must be a whole number of days, got {window_days}")
    daily = as_daily(daily_load)
    rolling = daily.rolling(window_days, min_periods=window_days)
    return (rolling.mean() / rolling.std(ddof=1)).rename("monotony")


def strain(daily_load: ArrayLike, window_days: int = 7) -> pd.Series:
    """Training strain: weekly load (sum over ``window_days``) x monotony (Foster 1998, above)."""
    daily = as_daily(daily_load)
    weekly = daily.rolling(window_days, min_periods=window_days).sum()
    return (weekly * monotony(daily, window_days)).rename("strain")
