"""Cycling power metrics: 30-s weighted power, intensity, stress score, mean-maximal power,
critical power / W', and W' balance.

Every function takes power in watts as a Series with a DatetimeIndex (as
:func:`sportlab.read_activity` returns it; the timestamps give the rate), a plain array with its
``sample_s`` (seconds per sample, default 1), or the ride's DataFrame itself (its ``power_w``
column is used; a ride without one is refused by name). The samples are put on a 1-s grid by
their timestamps (:func:`sportlab.resample.resample_1hz`): short gaps and dropouts are
interpolated, pauses are not recorded time, a long dropout is refused with a ValueError. What a
pause then counts as is chosen per metric and said in each docstring:

* weighted power, intensity and stress score: over recorded (moving) time only, pauses left out,
  as the head units and the reference definition (Allen & Coggan 2010) do;
* mean-maximal power and W' balance: pauses count as 0 W on the elapsed-time grid, so an effort
  is never joined up across a café stop, and W' recovers while the rider is stopped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.signal import lfilter

from sportlab._typing import ArrayLike, PowerInput
from sportlab.plausible import require_finite
from sportlab.resample import MAX_DROPOUT_S, PAUSE_GAP_S, grid_1hz, wrap_1hz


def power_series(power_w: PowerInput, needed_by: str = "this function") -> ArrayLike:
    """The power channel of ``power_w``: a ride DataFrame's ``power_w`` column, or ``power_w``.

    A ride recorded without a power meter has no ``power_w`` column (see
    :func:`sportlab.read_activity`); that is refused with a ValueError naming ``needed_by``
    rather than a KeyError.
    """
    if isinstance(power_w, pd.DataFrame):
        if "power_w" not in power_w.columns:
            raise ValueError(
                f"{needed_by} needs power, but this ride has no power_w column (it was recorded "
                "without a power meter); use the heart-rate metrics in sportlab.metrics.hr"
            )
        return power_w["power_w"]
    return power_w


def to_1hz(
    power_w: PowerInput,
    sample_s: float | None = None,
    *,
    pauses: Literal["zero", "drop", "nan"] = "zero",
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
) -> pd.Series:
    """Power (W) on a regular 1-s grid, resampled by its timestamps.

    Short gaps (up to ``pause_gap_s``, e.g. smart recording) and short NaN dropouts (up to
    ``max_dropout_s`` between valid samples) are linearly interpolated; a longer dropout while
    recording raises ValueError. Seconds not recorded (a pause: no sample for longer than
    ``pause_gap_s``; a dropout at the edge of a stretch of riding) become, by ``pauses``:

    * ``"zero"`` (default): 0 W, keeping the elapsed-time grid (mean-max, W' balance);
    * ``"drop"``: left out, the recorded seconds joined up (weighted power: moving time);
    * ``"nan"``: NaN.

    A plain array is taken to be sampled every ``sample_s`` seconds (default 1). The rules and
    their reasons are in :mod:`sportlab.resample`. Returns a Series named ``power_w``.
    """
    if pauses not in ("zero", "drop", "nan"):
        raise ValueError(f"pauses must be 'zero', 'drop' or 'nan', got {pauses!r}")
    grid, start = grid_1hz(
        power_series(power_w, "to_1hz"),
        sample_s,
        pause_gap_s=pause_gap_s,
        max_dropout_s=max_dropout_s,
        name="power_w",
    )
    series = wrap_1hz(grid, start, "power_w")
    not_recorded = np.isnan(grid)
    if grid.size and not_recorded.all():
        raise ValueError("power_w has no valid value at all (every sample is NaN or implausible)")
    if not not_recorded.any() or pauses == "nan":
        return series
    if pauses == "zero":
        return series.mask(not_recorded, 0.0)
    return series[~not_recorded]


def weighted_power(
    power_w: PowerInput,
    window_s: int = 30,
    sample_s: float | None = None,
    *,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
) -> float:
    """30-s rolling fourth-power mean of power over recorded (moving) time, in watts.

    Rolling ``window_s`` mean of 1-Hz power, raised to the 4th power, averaged over the ride, then
    the 4th root; the first full window starts the average. This is Coggan's algorithm (Allen H,
    Coggan A. Training and Racing with a Power Meter, 2nd ed. VeloPress 2010, ch. 7; the
    commercial name is avoided here): it weights hard surges by their higher physiological cost.
    Only recorded seconds count: pauses are left out and the riding either side joined up, as
    the head units compute the value they store in a FIT file's session message (checked
    against it in the tests). Rides shorter than one window return the plain mean. Timing,
    gaps and dropouts (``pause_gap_s``, ``max_dropout_s``): see :func:`to_1hz`.
    """
    if not (math.isfinite(window_s) and window_s >= 1 and int(window_s) == window_s):
        raise ValueError(f"window_s must be a whole number of seconds, at least 1, got {window_s}")
    window_s = int(window_s)
    power = to_1hz(power_series(power_w, "weighted_power"), sample_s, pauses="drop",
                   pause_gap_s=pause_gap_s, max_dropout_s=max_dropout_s).to_numpy()
    if power.size == 0:
        raise ValueError("power_w is empty: weighted power needs at least one sample")
    if power.size < window_s:
        return float(power.mean())
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    rolling = (cumulative[window_s:] - cumulative[:-window_s]) / window_s
    return float(np.mean(rolling**4) ** 0.25)


def intensity(weighted_power_w: float | np.ndarray, ftp_w: float) -> float | np.ndarray:
    """Intensity factor: weighted power / functional threshold power (Allen & Coggan 2010).

    A weighted power or FTP that is not finite, negative (FTP: not positive) or above any
    human's (:data:`sportlab.plausible.BOUNDS`, 3000 W) raises ValueError: an infinite power
    would otherwise give an infinite score."""
    require_finite("ftp_w", ftp_w, positive=True, channel="power_w")
    require_finite("weighted_power_w", weighted_power_w, allow_nan=True, channel="power_w")
    return weighted_power_w / ftp_w


def stress_score(
    duration_s: float | np.ndarray, weighted_power_w: float | np.ndarray, ftp_w: float
) -> float | np.ndarray:
    """Power-based session stress: 100 x hours x intensity squared (one hour at FTP = 100).

    ``100 * duration_s * WP * (WP / FTP) / (FTP * 3600)`` (Allen & Coggan 2010, ch. 7).
    ``duration_s`` is the recorded (moving) time, pauses excluded, as for the weighted power:
    :func:`sportlab.resample.moving_time_s` gives it from the recording's timestamps.
    """
    require_finite("duration_s", duration_s, allow_nan=True)
    return 100.0 * duration_s / 3600.0 * intensity(weighted_power_w, ftp_w) ** 2


def power_zones(ftp_w: float) -> pd.DataFrame:
    """Coggan's seven power levels as fractions of FTP: <55, 55-75, 76-90, 91-105, 106-120,
    121-150, >150 % (Allen & Coggan 2010, ch. 4). Lower bound included, upper excluded."""
    require_finite("ftp_w", ftp_w, positive=True, channel="power_w")
    edges = [0.0, 0.55, 0.76, 0.91, 1.06, 1.21, 1.51]
    lower = [e * ftp_w for e in edges]
    upper = [*lower[1:], np.inf]
    names = pd.Index([f"L{i}" for i in range(1, 8)], name="zone")
    return pd.DataFrame({"lower_w": lower, "upper_w": upper}, index=names)


# The durations people look up on a mean-max curve and test over (3, 5, 12 and 20 min among
# them): always on the default grid, so ``curve.loc[1200]`` works without interpolation.
STANDARD_DURATIONS_S = (180, 240, 300, 360, 420, 480, 600, 720, 900, 1200, 1800, 2400, 3600,
                        5400, 7200, 10800, 14400, 18000)


def _default_durations(n: int) -> np.ndarray:
    # Every second up to 2 min (where the curve bends fastest), then ~150 log-spaced points.
    short = np.arange(1, min(n, 120) + 1)
    if n <= 120:
        return short
    long = np.unique(np.geomspace(120, n, 150).round().astype(int))
    standard = np.array([d for d in STANDARD_DURATIONS_S if d <= n], dtype=int)
    return np.unique(np.concatenate([short, long, standard]))


def _whole_seconds(durations_s: ArrayLike) -> np.ndarray:
    """Durations asked for, as sorted unique whole seconds; a duration that is not a positive
    whole number of seconds raises ValueError (1.5 s was read as 1 s, 0 and -5 s were left out
    and inf failed with OverflowError)."""
    asked = np.atleast_1d(np.asarray(durations_s, dtype="float64"))
    bad = ~np.isfinite(asked) | (asked < 1) | (asked != np.floor(asked))
    if bad.any():
        raise ValueError(f"durations_s must be whole seconds of at least 1, got {asked[bad][0]!r}")
    return np.unique(asked.astype(np.int64))


def mean_max_power(
    power_w: PowerInput,
    durations_s: ArrayLike | None = None,
    sample_s: float | None = None,
    *,
    at_least: bool = False,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
) -> pd.Series:
    """Mean-maximal power curve: best average power (W) for each duration (s).

    The value at d is the best mean power over any d consecutive seconds of the ride, the
    record power profile's definition (Quod MJ et al. Int J Sports Med 2010;31:397-401; Pinot J,
    Grappe F. Int J Sports Med 2011;32:839-844). It depends only on the ride and d, never on
    which other durations are asked for (computed exactly from cumulative sums).

    The best *exactly*-d means can rise a little with d (e.g. 1.5, 0, 1.5 W: best 2 s 0.75 W,
    best 3 s 1.0 W). With ``at_least=True`` the value is instead the best mean over any effort
    of *at least* d seconds, a non-increasing curve, also exact and independent of the list:
    an effort of length L >= 2d splits into two of at least d, one as good as the whole, so
    only lengths d..2d-1 matter; those not asked for are checked by a Dinkelbach iteration
    (Dinkelbach W. Management Science 1967;13:492-498), skipped where a bound proves they cannot
    win. It costs several times the default on long rides.

    Default durations: every second to 120 s, ~150 log-spaced durations up to the ride length,
    and the standard test durations in :data:`STANDARD_DURATIONS_S` (3, 5, 12, 20 min, ...)
    that fit in the ride. ``durations_s`` given: whole seconds of at least 1 (else ValueError);
    those longer than the ride are left out of the result.

    Pauses count as 0 W on the elapsed-time grid (:func:`to_1hz`): an effort interrupted by a
    pause is not joined up across it, so the curve is never above what was ridden in one go.
    Short gaps and dropouts are interpolated; a plain array is sampled every ``sample_s`` s;
    ``pause_gap_s`` and ``max_dropout_s`` as in :func:`to_1hz`.

    Returns a Series named ``power_w`` indexed by ``duration_s``.
    """
    power = to_1hz(power_series(power_w, "mean_max_power"), sample_s,
                   pause_gap_s=pause_gap_s, max_dropout_s=max_dropout_s).to_numpy()
    n = power.size
    if durations_s is None:
        durations = _default_durations(n)
    else:
        durations = _whole_seconds(durations_s)
        durations = durations[durations <= n]
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    exact = np.array([np.max(cumulative[d:] - cumulative[:-d]) / d for d in durations])
    best = _best_at_least(power, cumulative, durations, exact) if at_least else exact
    return pd.Series(best, index=pd.Index(durations, name="duration_s"), name="power_w")


def _best_at_least(
    power: np.ndarray, cumulative: np.ndarray, durations: np.ndarray, exact: np.ndarray
) -> np.ndarray:
    """Exact best mean over any window of at least d samples, for each (sorted) d, from the
    best means over exactly d (``exact``)."""
    n = power.size
    if durations.size == 0:
        return exact
    # Lower bound from the durations computed: the best of every asked length >= d.
    best = np.maximum.accumulate(exact[::-1])[::-1]
    # Lengths not asked for: the gaps between asked durations, and above the longest one.
    gap_low = durations + 1  # first and last length of each gap
    gap_high = np.append(durations[1:] - 1, n)
    has_gap = gap_high >= gap_low
    # A window of length L in a gap, grown to the next asked length b (or to the whole ride),
    # gains only non-negative samples, so its sum is at most b * best(b) (or the ride's sum).
    bound = np.where(has_gap, np.append(durations[1:] * exact[1:], cumulative[-1]) / gap_low,
                     -np.inf)
    if power.min() < 0:  # the bound needs non-negative power; to_1hz gives that for rides
        bound = np.where(has_gap, np.inf, -np.inf)
    for k, d in enumerate(durations):
        reach = min(2 * d - 1, n)  # the lengths that can hold the best of at least d
        relevant = has_gap[k:] & (gap_low[k:] <= reach)
        if relevant.any() and np.max(bound[k:][relevant]) > best[k]:
            best[k] = _dinkelbach(cumulative, int(d), best[k])
    return best


def _dinkelbach(cumulative: np.ndarray, d: int, start: float) -> float:
    """The best mean over windows of at least ``d`` samples, from a known achievable ``start``.

    Each step finds the window of length >= d maximising sum(p - mean) (prefix minimum) and
    moves to its mean; the mean rises strictly until no window beats it."""
    steps = np.arange(cumulative.size, dtype=float)
    value = start
    while True:
        shifted = cumulative - value * steps
        lowest = np.minimum.accumulate(shifted[: cumulative.size - d])
        gains = shifted[d:] - lowest
        j = int(np.argmax(gains))
        if not gains[j] > 0:
            return value
        end = j + d
        begin = int(np.argmin(shifted[: j + 1]))
        candidate = (cumulative[end] - cumulative[begin]) / (end - begin)
        if not candidate > value:
            return value
        value = candidate


@dataclass(frozen=True)
class CriticalPowerFit:
    """Result of :func:`critical_power`: CP (W), W' (J), and for the 3-parameter model Pmax (W)."""

    cp_w: float
    w_prime_j: float
    p_max_w: float | None
    model: str
    rmse_w: float

    def predict(self, duration_s: ArrayLike | float) -> np.ndarray:
        """Power (W) the model predicts can be sustained for ``duration_s`` seconds."""
        t = np.asarray(duration_s, dtype=float)
        if self.p_max_w is None:
            return self.cp_w + self.w_prime_j / t
        return _morton(t, self.cp_w, self.w_prime_j, self.p_max_w)


def _morton(t: np.ndarray, cp: float, w_prime: float, p_max: float) -> np.ndarray:
    # Morton's t = W'/(P - CP) - W'/(Pmax - CP), solved for P.
    return cp + w_prime / (t + w_prime / (p_max - cp))


# Default effort durations (s) for each model. 2-parameter: 3, 5, 12 and 20 min, efforts long
# enough to be limited by CP and W' alone (Jones et al. 2010 recommend exhaustive trials of about
# 2-15 min; field estimates from mean-maximal power commonly use 3-20 min, Leo et al. 2022).
# 3-parameter: the same plus 1 min, which Morton's Pmax term lets the model fit; sprints shorter
# than that lie off the power-duration hyperbola (Morton 2006) and would drag W' down.
DEFAULT_CP_DURATIONS_S = {"2p": (180, 300, 720, 1200), "3p": (60, 180, 300, 720, 1200)}
# W' outside this band is not a physiological capacity but a sign of non-maximal efforts in the
# curve: a generous band around the values reported for cyclists (a few to ~30 kJ; Jones et al.
# 2010; Poole et al. 2016).
W_PRIME_PLAUSIBLE_J = (5_000.0, 50_000.0)


class ImplausibleFitWarning(UserWarning):
    """A critical-power fit whose CP or W' cannot be right for the efforts it was fitted to."""


def critical_power(
    mean_max: pd.Series | Mapping[float, float],
    model: Literal["2p", "3p"] = "2p",
    min_s: float | None = None,
    max_s: float | None = None,
    durations_s: ArrayLike | None = None,
) -> CriticalPowerFit:
    """Fit critical power (W) and W' (J) to a mean-maximal power curve.

    * ``"2p"``: Monod H, Scherrer J. The work capacity of a synergic muscular group. Ergonomics
      1965;8:329-338. Work is linear in time, ``W = W' + CP * t``; fitted by linear least squares.
    * ``"3p"``: Morton RH. A 3-parameter critical power model. Ergonomics 1996;39:611-619.
      ``t = W'/(P - CP) - W'/(Pmax - CP)`` adds a finite instantaneous power Pmax so that efforts
      of about a minute fit too; nonlinear least squares on power.

    Which points are fitted: ``durations_s`` if given; else, with ``min_s``/``max_s``, every
    point of the curve in that range; else the model's default durations in
    :data:`DEFAULT_CP_DURATIONS_S`: 3, 5, 12, 20 min for ``"2p"`` and 1, 3, 5, 12, 20 min for
    ``"3p"`` (Jones AM, Vanhatalo A, Burnley M, Morton RH, Poole DC. Critical power:
    implications for determination of VO2max and exercise tolerance. Med Sci Sports Exerc
    2010;42:1876-1890; Leo P, Spragg J, Podlogar T, Lawley JS, Mujika I. Power profiling and the
    power-duration relationship in cycling: a narrative review. Eur J Appl Physiol
    2022;122:301-316; Morton RH. The critical power and related whole-body bioenergetic models.
    Eur J Appl Physiol 2006;96:339-354). Fitting every point of a mean-max curve instead biases
    the fit: the curve between real all-out efforts is made of diluted, sub-maximal ones. A
    duration the curve lacks is interpolated (linearly in log duration) between its points;
    durations beyond the curve are left out.

    ``mean_max`` is a Series of power (W) indexed by duration (s) (or a dict of them), e.g. from
    :func:`mean_max_power` (``at_least=True`` gives the capacity envelope: an athlete who rode
    21 min at a power can ride 20 min at it). The result is only as good as the efforts in
    it: a ride without all-out efforts at those durations underestimates CP and W'. An
    :class:`ImplausibleFitWarning` is issued when the fitted CP is above the curve's best 20-min
    power (CP is sustainable for longer than that, so it cannot be) or W' lies outside
    :data:`W_PRIME_PLAUSIBLE_J` (Poole DC, Burnley M, Vanhatalo A, Rossiter HB, Jones AM.
    Critical power: an important fatigue threshold in exercise physiology. Med Sci Sports
    Exerc 2016;48:2320-2334).
    """
    if model not in ("2p", "3p"):
        raise ValueError(f"model must be '2p' or '3p', got {model!r}")
    if isinstance(mean_max, Mapping):  # {duration_s: power_w}, e.g. a rider's test results
        mean_max = pd.Series(mean_max, dtype="float64")
    known_t = mean_max.index.to_numpy(dtype=float)
    known_p = mean_max.to_numpy(dtype=float)
    valid = ~np.isnan(known_p)
    known_t, known_p = known_t[valid], known_p[valid]
    require_finite("mean_max durations", known_t, positive=True)
    require_finite("mean_max power", known_p, channel="power_w")
    if np.any(np.diff(known_t) < 0):
        order = np.argsort(known_t)
        known_t, known_p = known_t[order], known_p[order]
    if durations_s is None and min_s is None and max_s is None:
        durations_s = DEFAULT_CP_DURATIONS_S[model]
    if durations_s is not None:
        wanted = _whole_seconds(durations_s).astype(float)
        if known_t.size == 0 or wanted.size == 0 or not (wanted > 0).all():
            t = np.zeros(0)
        else:
            t = wanted[(wanted >= known_t.min()) & (wanted <= known_t.max())]
        p = np.interp(np.log(t), np.log(known_t), known_p) if t.size else t
        where = f"at the durations {wanted.astype(int).tolist()} s"
    else:
        low = min_s if min_s is not None else 1.0
        high = max_s if max_s is not None else np.inf
        keep = (known_t >= low) & (known_t <= high)
        t, p = known_t[keep], known_p[keep]
        where = f"between {low:g} and {high:g} s"
    if t.size < 3:
        raise ValueError(f"need at least 3 mean-max points {where}, the curve has {t.size}")
    cp, w_prime = np.polyfit(t, p * t, 1)
    if model == "2p":
        fit = CriticalPowerFit(float(cp), float(w_prime), None, "2p", 0.0)
    else:
        start = (cp, max(w_prime, 1.0), max(p.max(), cp + 1.0) * 1.1)
        (cp, w_prime, p_max), _ = curve_fit(
            _morton,
            t,
            p,
            p0=start,
            bounds=([0.0, 1.0, 1.0], [np.inf, np.inf, np.inf]),
            maxfev=20_000,
        )
        fit = CriticalPowerFit(float(cp), float(w_prime), float(p_max), "3p", 0.0)
    rmse = float(np.sqrt(np.mean((fit.predict(t) - p) ** 2)))
    _warn_if_implausible(fit, known_t, known_p)
    return CriticalPowerFit(fit.cp_w, fit.w_prime_j, fit.p_max_w, fit.model, rmse)


def _warn_if_implausible(fit: CriticalPowerFit, t: np.ndarray, p: np.ndarray) -> None:
    if t.size and t.min() <= 1200 <= t.max():
        best_20min_w = float(np.interp(np.log(1200.0), np.log(t), p))
        if fit.cp_w > best_20min_w:
            warnings.warn(
                f"fitted CP {fit.cp_w:.0f} W is above the best 20-min power {best_20min_w:.0f} W:"
                " the shorter efforts were probably not all-out, so CP is overestimated",
                ImplausibleFitWarning,
                stacklevel=3,
            )
    low, high = W_PRIME_PLAUSIBLE_J
    if not low <= fit.w_prime_j <= high:
        warnings.warn(
            f"fitted W' {fit.w_prime_j / 1000:.1f} kJ is outside the physiological range "
            f"{low / 1000:.0f}-{high / 1000:.0f} kJ: the efforts in the curve were probably not "
            "all-out",
            ImplausibleFitWarning,
            stacklevel=3,
        )


def skiba_tau_s(
    power_w: PowerInput,
    cp_w: float,
    sample_s: float | None = None,
    *,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
) -> float:
    """W' reconstitution time constant (s): ``546 * exp(-0.01 * D_CP) + 316``.

    ``D_CP`` is CP minus the mean of all 1-s samples below CP (the recovery power); with no
    sample below CP, recovery power is taken as 0 W. Pauses count as 0 W, as in
    :func:`w_prime_balance`; ``pause_gap_s`` and ``max_dropout_s`` as in :func:`to_1hz`.
    Skiba PF, Chidnok W, Vanhatalo A, Jones AM. Modeling the
    expenditure and reconstitution of work capacity above critical power. Med Sci Sports Exerc
    2012;44(8):1526-1532.
    """
    require_finite("cp_w", cp_w, positive=True, channel="power_w")
    power = to_1hz(power_series(power_w, "skiba_tau_s"), sample_s, pause_gap_s=pause_gap_s,
                   max_dropout_s=max_dropout_s).to_numpy()
    below = power[power < cp_w]
    recovery_w = float(below.mean()) if below.size else 0.0
    return 546.0 * math.exp(-0.01 * (cp_w - recovery_w)) + 316.0


def w_prime_balance(
    power_w: PowerInput,
    cp_w: float,
    w_prime_j: float,
    method: Literal["integral", "differential"] = "integral",
    tau_s: float | None = None,
    sample_s: float | None = None,
    *,
    pause_gap_s: float = PAUSE_GAP_S,
    max_dropout_s: float = MAX_DROPOUT_S,
) -> pd.Series:
    """W' balance (J) second by second: how much of W' is left.

    * ``"integral"`` (Skiba et al. 2012, see :func:`skiba_tau_s`):
      ``W'bal(t) = W' - sum_{u<=t} max(P(u) - CP, 0) * exp(-(t - u) / tau)``, with one tau for the
      whole ride (override with ``tau_s``). Expended W' recovers exponentially, even during
      later efforts above CP.
    * ``"differential"`` (Skiba PF, Fulford J, Clarke DC, Vanhatalo A, Jones AM. Intramuscular
      determinants of the ability to recover work capacity above critical power. Eur J Appl
      Physiol 2015;115:703-713; Clarke DC, Skiba PF. Adv Physiol Educ 2013;37:134-152): above CP
      ``dW'bal/dt = -(P - CP)``; below CP ``dW'bal/dt = (CP - P) (W' - W'bal) / W'``, i.e. the
      deficit decays with a rate set by how far below CP the rider is. Each 1-s step below CP is
      integrated exactly (``deficit *= exp(-(CP - P) / W')``), which is stable for any power.

    Neither form clips at zero: a negative balance means the model's W' or CP is too low.
    Pauses count as 0 W on the elapsed-time grid of :func:`to_1hz`: W' recovers while the rider
    is stopped. Short gaps and dropouts are interpolated; a plain array is sampled every
    ``sample_s`` s; ``pause_gap_s`` and ``max_dropout_s`` as in :func:`to_1hz`. Returns a
    Series named ``w_prime_balance_j`` on that 1-s grid.
    """
    require_finite("cp_w", cp_w, positive=True, channel="power_w")
    require_finite("w_prime_j", w_prime_j, positive=True)
    if tau_s is not None:
        require_finite("tau_s", tau_s, positive=True)
    if method not in ("integral", "differential"):
        raise ValueError(f"method must be 'integral' or 'differential', got {method!r}")
    power = to_1hz(power_series(power_w, "w_prime_balance"), sample_s,
                   pause_gap_s=pause_gap_s, max_dropout_s=max_dropout_s)
    values = power.to_numpy()
    above = np.clip(values - cp_w, 0.0, None)
    if method == "integral":
        tau = tau_s if tau_s is not None else skiba_tau_s(power.to_numpy(), cp_w)
        decay = math.exp(-1.0 / tau)
        expended = lfilter([1.0], [1.0, -decay], above) if values.size else above
    else:
        recovery_factor = np.exp(-np.clip(cp_w - values, 0.0, None) / w_prime_j)
        expended = np.empty_like(values)
        deficit = 0.0
        # A linear recurrence with a time-varying coefficient: no closed vectorised form that
        # stays numerically stable over long rides, and a 5-h ride is only 18 000 steps.
        steps = zip(above.tolist(), recovery_factor.tolist(), strict=True)
        for i, (gain, factor) in enumerate(steps):
            deficit = deficit * factor + gain
            expended[i] = deficit
    return pd.Series(w_prime_j - expended, index=power.index, name="w_prime_balance_j")
