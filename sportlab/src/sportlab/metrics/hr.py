"""Heart-rate zones and heart-rate based training impulse (TRIMP)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from sportlab._typing import ArrayLike
from sportlab.plausible import clean, require_finite, require_session_minutes, within
from sportlab.resample import MAX_DROPOUT_S, PAUSE_GAP_S, grid_1hz, is_1hz_with_pauses

# Heart-rate arguments (HRmax, resting HR, thresholds) are checked against the channel's bounds.
_HR = "heart_rate_bpm"
# Banister's weighting constants (a, b) in TRIMP = D * dHR * a * exp(b * dHR).
_BANISTER_CONSTANTS = {"male": (0.64, 1.92), "female": (0.86, 1.67)}


def trimp(
    duration_min: ArrayLike | float,
    hr_avg: ArrayLike | float,
    hr_rest: ArrayLike | float,
    hr_max: ArrayLike | float,
    sex: Literal["male", "female"] = "male",
    method: Literal["banister"] = "banister",
) -> np.ndarray | float:
    """Banister's training impulse (arbitrary units) from session duration and mean heart rate.

    ``TRIMP = D * dHR * a * exp(b * dHR)`` with ``dHR = (HRavg - HRrest) / (HRmax - HRrest)``
    (fraction of heart-rate reserve, negative values clipped to 0; heart rates outside
    :data:`sportlab.plausible.BOUNDS` or a mean above HRmax raise ValueError), D in minutes, and
    ``a, b = 0.64, 1.92`` for men and ``0.86, 1.67`` for women, from the blood-lactate response to
    exercise. Banister EW. Modeling elite athletic performance. In: MacDougall JD, Wenger HA,
    Green HJ (eds). Physiological Testing of the High-Performance Athlete. Human Kinetics 1991,
    pp 403-424; Morton RH, Fitz-Clarke JR, Banister EW. J Appl Physiol 1990;69:1171-1177.
    """
    if method != "banister":
        raise ValueError(f"method must be 'banister', got {method!r}")
    if sex not in _BANISTER_CONSTANTS:
        raise ValueError(f"sex must be 'male' or 'female', got {sex!r}")
    a, b = _BANISTER_CONSTANTS[sex]
    # A NaN session (no duration or heart rate recorded) stays NaN; inf or negative is refused.
    require_session_minutes("duration_min", duration_min)
    require_finite("hr_avg", hr_avg, positive=True, allow_nan=True, channel=_HR)
    require_finite("hr_rest", hr_rest, positive=True, channel=_HR)
    require_finite("hr_max", hr_max, positive=True, channel=_HR)
    rest = np.asarray(hr_rest, dtype=float)
    maximum = np.asarray(hr_max, dtype=float)
    average = np.asarray(hr_avg, dtype=float)
    _check_reserve(maximum, rest)
    with np.errstate(invalid="ignore"):
        if np.any(average > maximum):
            # More than 100 % of the reserve: the HRmax given is not this athlete's maximum.
            raise ValueError(f"hr_avg ({average}) is above hr_max ({maximum}): a session's "
                             "mean heart rate cannot exceed the maximum; measure HRmax again")
    reserve_fraction = (average - rest) / (maximum - rest)
    reserve_fraction = np.clip(reserve_fraction, 0.0, None)
    result = (
        np.asarray(duration_min, dtype=float) * reserve_fraction * a * np.exp(b * reserve_fraction)
    )
    return float(result) if result.ndim == 0 else result


def _check_reserve(hr_max: np.ndarray, hr_rest: np.ndarray) -> None:
    if not np.all(hr_max > hr_rest):
        raise ValueError(
            f"hr_max must be above hr_rest (heart-rate reserve), got hr_max={hr_max.tolist()} "
            f"and hr_rest={hr_rest.tolist()}"
        )


def per_second(
    values: ArrayLike,
    sample_s: float | None = None,
    *,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
    channel: str = "heart_rate_bpm",
) -> tuple[np.ndarray, float]:
    """Samples and the seconds each stands for, for summing time in zones.

    A series with timestamps is put on a 1-s grid by them (:func:`sportlab.resample.resample_1hz`:
    short gaps and dropouts interpolated; pauses and long dropouts NaN, so not counted); a plain
    array's samples each stand for ``sample_s`` seconds (default 1). ``pause_gap_s`` and
    ``max_dropout_s`` as in :func:`sportlab.resample.grid_1hz`; a dropout longer than
    ``max_dropout_s`` is not counted (heart-rate functions never refuse a ride for it).
    ``channel`` names what the values are (``"heart_rate_bpm"``, ``"power_w"``): samples
    outside its bounds (:mod:`sportlab.plausible`) are not counted, with a warning.
    """
    if isinstance(values, pd.Series) and isinstance(
        values.index, pd.DatetimeIndex | pd.TimedeltaIndex
    ):
        data = values.to_numpy(dtype=float)
        # within(): every sample a plausible number (so no NaN either), in one min/max pass.
        if (sample_s is None and pause_gap_s == PAUSE_GAP_S and data.size
                and within(data, channel) and is_1hz_with_pauses(values.index)):
            # Each sample is one second; pauses have no seconds to count.
            return data, 1.0
        data = clean(data, channel, stacklevel=4)
        grid, _ = grid_1hz(pd.Series(data, index=values.index), sample_s, long_dropouts="nan",
                           name=channel, pause_gap_s=pause_gap_s, max_dropout_s=max_dropout_s)
        return grid, 1.0
    step = 1.0 if sample_s is None else float(sample_s)
    if not step > 0 or not np.isfinite(step):
        raise ValueError(f"sample_s must be a positive number of seconds, got {sample_s!r}")
    return clean(np.asarray(values, dtype=float), channel, stacklevel=4), step


def _weighted_minutes(weights: np.ndarray, sample_s: float) -> float:
    return float(np.sum(weights) * sample_s / 60.0)


def trimp_edwards(
    hr_series: ArrayLike, hr_max: float, sample_s: float | None = None, **gaps: float
) -> float:
    """Edwards' summated-zone TRIMP: minutes in each %HRmax zone x zone weight 1-5.

    Zones 50-60, 60-70, 70-80, 80-90 and 90-100 % HRmax weigh 1-5; samples below 50 % count 0 and
    above HRmax count as zone 5. Timing as :func:`per_second`: a timestamped series by its
    timestamps (short gaps and dropouts interpolated; pauses and longer dropouts not counted), a
    plain array at ``sample_s`` s per sample (default 1; NaN samples not counted); ``gaps``:
    ``pause_gap_s``, ``max_dropout_s`` (:func:`per_second`).
    Edwards S. The Heart Rate Monitor Book. Sacramento: Fleet Feet Press, 1993.
    """
    require_finite("hr_max", hr_max, positive=True, channel=_HR)
    values, step = per_second(hr_series, sample_s, **gaps)
    # Scale to tenths before dividing so exact boundaries (e.g. 140/200) land in the upper zone.
    tenths = values * 10.0 / hr_max
    weights = np.where(np.isnan(tenths), 0, np.clip(np.floor(tenths) - 4, 0, 5))
    return _weighted_minutes(weights, step)


def trimp_lucia(
    hr_series: ArrayLike,
    vt1_bpm: float,
    vt2_bpm: float,
    sample_s: float | None = None,
    **gaps: float,
) -> float:
    """Lucia's TRIMP: minutes below VT1 x1, between VT1 and VT2 x2, at or above VT2 x3.

    The zones are anchored on the heart rates at the ventilatory thresholds (VT1 < VT2). Timing
    and NaN as :func:`trimp_edwards`. Lucia A,
    Hoyos J, Santalla A, Earnest C, Chicharro JL. Tour de France versus Vuelta a Espana: which is
    harder? Med Sci Sports Exerc 2003;35(5):872-878.
    """
    require_finite("vt1_bpm", vt1_bpm, positive=True, channel=_HR)
    require_finite("vt2_bpm", vt2_bpm, positive=True, channel=_HR)
    if not vt1_bpm < vt2_bpm:
        raise ValueError(f"vt1_bpm must be below vt2_bpm, got {vt1_bpm} and {vt2_bpm}")
    hr, step = per_second(hr_series, sample_s, **gaps)
    weights = np.select([hr >= vt2_bpm, hr >= vt1_bpm, hr > 0], [3, 2, 1], default=0)
    return _weighted_minutes(weights, step)


# Friel's LTHR zones (upper bounds, fraction of LTHR). Friel J. The Cyclist's Training Bible,
# 4th ed., VeloPress 2009; The Triathlete's Training Bible, 3rd ed., 2009.
_FRIEL_UPPER = {
    "cycling": (0.81, 0.90, 0.94, 1.00, 1.03, 1.06),
    "running": (0.85, 0.90, 0.95, 1.00, 1.03, 1.06),
}
_FRIEL_NAMES = ("Z1", "Z2", "Z3", "Z4", "Z5a", "Z5b", "Z5c")
_PERCENT_BOUNDS = (0.50, 0.60, 0.70, 0.80, 0.90, 1.00)


def hr_zones(
    method: Literal["hrmax", "karvonen", "lthr"] = "hrmax",
    *,
    hr_max: float | None = None,
    hr_rest: float | None = None,
    lthr_bpm: float | None = None,
    sport: Literal["cycling", "running"] = "cycling",
) -> pd.DataFrame:
    """Heart-rate training zones as a DataFrame (index = zone) of ``lower_bpm``/``upper_bpm``.

    * ``"hrmax"``: five zones at 50-60-70-80-90-100 % of HRmax (Edwards 1993).
    * ``"karvonen"``: the same percentages of heart-rate *reserve*,
      ``HR = HRrest + pct * (HRmax - HRrest)``. Karvonen MJ, Kentala E, Mustala O. The effects of
      training on heart rate; a longitudinal study. Ann Med Exp Biol Fenn 1957;35(3):307-315.
    * ``"lthr"``: Friel's seven zones as fractions of lactate-threshold heart rate (cycling
      <81, 81-89, 90-93, 94-99, 100-102, 103-106, >106 %; running <85, 85-89, 90-94, 95-99,
      100-102, 103-106, >106 %). Friel J. The Cyclist's Training Bible, VeloPress 2009.

    A zone includes its lower bound and excludes its upper bound; open ends are 0 and inf.
    """
    if method in ("hrmax", "karvonen"):
        if hr_max is None or (method == "karvonen" and hr_rest is None):
            raise ValueError(f"method {method!r} needs hr_max (and hr_rest for karvonen)")
        require_finite("hr_max", hr_max, positive=True, channel=_HR)
        base = float(hr_rest) if method == "karvonen" and hr_rest is not None else 0.0
        if method == "karvonen":
            require_finite("hr_rest", base, channel=_HR)
        _check_reserve(np.asarray(float(hr_max)), np.asarray(base))
        bounds = [base + p * (hr_max - base) for p in _PERCENT_BOUNDS]
        names = [f"Z{i}" for i in range(1, 6)]
        lower, upper = bounds[:-1], bounds[1:]
    elif method == "lthr":
        if lthr_bpm is None:
            raise ValueError("method 'lthr' needs lthr_bpm")
        require_finite("lthr_bpm", lthr_bpm, positive=True, channel=_HR)
        if sport not in _FRIEL_UPPER:
            raise ValueError(f"sport must be 'cycling' or 'running', got {sport!r}")
        edges = [p * lthr_bpm for p in _FRIEL_UPPER[sport]]
        names = list(_FRIEL_NAMES)
        lower, upper = [0.0, *edges], [*edges, np.inf]
    else:
        raise ValueError(f"method must be 'hrmax', 'karvonen' or 'lthr', got {method!r}")
    return pd.DataFrame(
        {"lower_bpm": lower, "upper_bpm": upper}, index=pd.Index(names, name="zone")
    )


def time_in_zones(
    values: ArrayLike,
    zones: pd.DataFrame,
    sample_s: float | None = None,
    lower_col: str = "lower_bpm",
    **gaps: float,
) -> pd.Series:
    """Seconds spent in each zone (by each zone's lower bound), e.g. for a zone-distribution plot.

    Works for heart-rate zones from :func:`hr_zones` or power zones from
    :func:`sportlab.metrics.power.power_zones` (pass ``lower_col="lower_w"``). Samples below the
    first zone, pauses and NaN samples are not counted. Timing as :func:`per_second`: a
    timestamped series by its timestamps, a plain array at ``sample_s`` s per sample (default
    1). Zones: Edwards 1993, Karvonen et al. 1957, Friel 2009 (see :func:`hr_zones`); power
    levels: Allen & Coggan 2010.
    """
    channel = {"lower_bpm": "heart_rate_bpm", "lower_w": "power_w"}.get(lower_col, "values")
    data, step = per_second(values, sample_s, channel=channel, **gaps)  # type: ignore[arg-type]
    data = data[~np.isnan(data)]
    lower = zones[lower_col].to_numpy(dtype=float)
    position = np.searchsorted(lower, data, side="right") - 1
    counts = np.bincount(position[position >= 0], minlength=len(lower))
    return pd.Series(counts * step, index=zones.index, name="seconds", dtype="float64")
