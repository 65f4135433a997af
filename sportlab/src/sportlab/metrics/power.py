"""Cycling power metrics: 30-s weighted power, intensity, stress score, mean-maximal power,
critical power / W', and W' balance.

Functions take power in watts sampled at 1 Hz. A Series with a DatetimeIndex (as returned by
:func:`sportlab.read_activity`) is first put on a 1-s grid by :func:`to_1hz`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.signal import lfilter

from sportlab._typing import ArrayLike


def to_1hz(power_w: ArrayLike) -> pd.Series:
    """Power on a regular 1-s grid, in watts; pauses and dropouts become 0 W.

    A DatetimeIndex is averaged into 1-s bins from the first to the last sample; seconds with no
    sample (a paused recording, a sensor dropout) count as 0 W, because the rider produced no
    recorded work then (the convention of GoldenCheetah's mean-maximal curve). Any other input is
    taken to be 1 Hz already; NaN counts as 0 W.
    """
    if isinstance(power_w, pd.Series) and isinstance(power_w.index, pd.DatetimeIndex):
        series = power_w.astype("float64").resample("1s").mean()
    else:
        series = pd.Series(power_w, dtype="float64")
    return series.fillna(0.0).rename("power_w")


def weighted_power(power_w: ArrayLike, window_s: int = 30) -> float:
    """30-s rolling fourth-power mean of power, in watts.

    Rolling ``window_s`` mean of 1-Hz power, raised to the 4th power, averaged over the ride, then
    the 4th root; the first full window starts the average. This is Coggan's algorithm (Allen H,
    Coggan A. Training and Racing with a Power Meter, 2nd ed. VeloPress 2010, ch. 7; the
    commercial name is avoided here): it weights hard surges by their higher physiological cost.
    Rides shorter than one window return the plain mean.
    """
    power = to_1hz(power_w)
    if len(power) < window_s:
        return float(power.mean()) if len(power) else float("nan")
    rolling = power.rolling(window_s).mean().dropna().to_numpy()
    return float(np.mean(rolling**4) ** 0.25)


def intensity(weighted_power_w: float | np.ndarray, ftp_w: float) -> float | np.ndarray:
    """Intensity factor: weighted power / functional threshold power (Allen & Coggan 2010)."""
    if ftp_w <= 0:
        raise ValueError("ftp_w must be positive")
    return weighted_power_w / ftp_w


def stress_score(
    duration_s: float | np.ndarray, weighted_power_w: float | np.ndarray, ftp_w: float
) -> float | np.ndarray:
    """Power-based session stress: 100 x hours x intensity squared (one hour at FTP = 100).

    ``100 * duration_s * WP * (WP / FTP) / (FTP * 3600)`` (Allen & Coggan 2010, ch. 7).
    """
    return 100.0 * duration_s / 3600.0 * intensity(weighted_power_w, ftp_w) ** 2


def power_zones(ftp_w: float) -> pd.DataFrame:
    """Coggan's seven power levels as fractions of FTP: <55, 55-75, 76-90, 91-105, 106-120,
    121-150, >150 % (Allen & Coggan 2010, ch. 4). Lower bound included, upper excluded."""
    edges = [0.0, 0.55, 0.76, 0.91, 1.06, 1.21, 1.51]
    lower = [e * ftp_w for e in edges]
    upper = [*lower[1:], np.inf]
    names = pd.Index([f"L{i}" for i in range(1, 8)], name="zone")
    return pd.DataFrame({"lower_w": lower, "upper_w": upper}, index=names)


def _default_durations(n: int) -> np.ndarray:
    # Every second up to 2 min (where the curve bends fastest), then ~150 log-spaced points.
    short = np.arange(1, min(n, 120) + 1)
    if n <= 120:
        return short
    long = np.unique(np.geomspace(120, n, 150).round().astype(int))
    return np.unique(np.concatenate([short, long]))


def mean_max_power(power_w: ArrayLike, durations_s: ArrayLike | None = None) -> pd.Series:
    """Mean-maximal power curve: best average power (W) for each duration (s).

    For each duration d the best mean over any d consecutive seconds is found from cumulative
    sums. The raw best means can rise with duration (e.g. 1.5, 0, 1.5 W: best 2-s 0.75 W, best
    3-s 1.0 W), so the curve reported is its upper envelope, "best mean power over any effort of
    *at least* d seconds", which is non-increasing; GoldenCheetah presents its mean-maximal curve
    the same way. Default durations: every second to 120 s, then ~150 log-spaced durations up to
    the ride length.

    Returns a Series named ``power_w`` indexed by ``duration_s``.
    """
    power = to_1hz(power_w).to_numpy()
    n = power.size
    if durations_s is None:
        durations = _default_durations(n)
    else:
        durations = np.unique(np.asarray(durations_s, dtype=int))
        durations = durations[(durations >= 1) & (durations <= n)]
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    best = np.array([np.max(cumulative[d:] - cumulative[:-d]) / d for d in durations])
    envelope = np.maximum.accumulate(best[::-1])[::-1] if best.size else best
    return pd.Series(envelope, index=pd.Index(durations, name="duration_s"), name="power_w")


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


def critical_power(
    mean_max: pd.Series,
    model: Literal["2p", "3p"] = "2p",
    min_s: float | None = None,
    max_s: float | None = None,
) -> CriticalPowerFit:
    """Fit critical power (W) and W' (J) to a mean-maximal power curve.

    * ``"2p"``: Monod H, Scherrer J. The work capacity of a synergic muscular group. Ergonomics
      1965;8:329-338. Work is linear in time, ``W = W' + CP * t``; fitted by least squares on
      durations 180-1200 s by default (3-20 min efforts, where the model holds).
    * ``"3p"``: Morton RH. A 3-parameter critical power model. Ergonomics 1996;39:611-619.
      ``t = W'/(P - CP) - W'/(Pmax - CP)`` adds a finite instantaneous power Pmax so that short
      efforts fit too; nonlinear least squares on power over durations 1-1200 s by default.

    ``mean_max`` is a Series of power (W) indexed by duration (s), e.g. from
    :func:`mean_max_power`. The result is only as good as the efforts in it: a ride without
    all-out efforts across the range underestimates CP and W'.
    """
    if model not in ("2p", "3p"):
        raise ValueError(f"model must be '2p' or '3p', got {model!r}")
    low = min_s if min_s is not None else (180.0 if model == "2p" else 1.0)
    high = max_s if max_s is not None else 1200.0
    curve = mean_max.dropna()
    curve = curve[(curve.index >= low) & (curve.index <= high)]
    if len(curve) < 3:
        raise ValueError(f"need at least 3 mean-max points between {low} and {high} s")
    t = curve.index.to_numpy(dtype=float)
    p = curve.to_numpy(dtype=float)
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
    return CriticalPowerFit(fit.cp_w, fit.w_prime_j, fit.p_max_w, fit.model, rmse)


def skiba_tau_s(power_w: ArrayLike, cp_w: float) -> float:
    """W' reconstitution time constant (s): ``546 * exp(-0.01 * D_CP) + 316``.

    ``D_CP`` is CP minus the mean of all samples below CP (the recovery power); with no sample
    below CP, recovery power is taken as 0 W. Skiba PF, Chidnok W, Vanhatalo A, Jones AM.
    Modeling the expenditure and reconstitution of work capacity above critical power. Med Sci
    Sports Exerc 2012;44(8):1526-1532.
    """
    power = to_1hz(power_w).to_numpy()
    below = power[power < cp_w]
    recovery_w = float(below.mean()) if below.size else 0.0
    return 546.0 * math.exp(-0.01 * (cp_w - recovery_w)) + 316.0


def w_prime_balance(
    power_w: ArrayLike,
    cp_w: float,
    w_prime_j: float,
    method: Literal["integral", "differential"] = "integral",
    tau_s: float | None = None,
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
    Returns a Series named ``w_prime_balance_j`` on the 1-Hz index of :func:`to_1hz`.
    """
    if cp_w <= 0 or w_prime_j <= 0:
        raise ValueError("cp_w and w_prime_j must be positive")
    power = to_1hz(power_w)
    values = power.to_numpy()
    above = np.clip(values - cp_w, 0.0, None)
    if method == "integral":
        tau = tau_s if tau_s is not None else skiba_tau_s(power, cp_w)
        decay = math.exp(-1.0 / tau)
        expended = lfilter([1.0], [1.0, -decay], above) if values.size else above
    elif method == "differential":
        recovery_factor = np.exp(-np.clip(cp_w - values, 0.0, None) / w_prime_j)
        expended = np.empty_like(values)
        deficit = 0.0
        # A linear recurrence with a time-varying coefficient: no closed vectorised form that
        # stays numerically stable over long rides, and a 5-h ride is only 18 000 steps.
        steps = zip(above.tolist(), recovery_factor.tolist(), strict=True)
        for i, (gain, factor) in enumerate(steps):
            deficit = deficit * factor + gain
            expended[i] = deficit
    else:
        raise ValueError(f"method must be 'integral' or 'differential', got {method!r}")
    return pd.Series(w_prime_j - expended, index=power.index, name="w_prime_balance_j")
