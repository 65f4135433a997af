"""Banister's impulse-response (fitness-fatigue) model of performance, and fitting it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.signal import lfilter

from sportlab._typing import ArrayLike
from sportlab.metrics.load import as_daily
from sportlab.plausible import require_finite


def _response(load: np.ndarray, tau: float) -> np.ndarray:
    """sum_{s<t} load[s] * exp(-(t - s) / tau): the training impulse felt on day t.

    Load on day s acts from day s + 1, so a session never changes that same day's performance.
    """
    decay = np.exp(-1.0 / tau)
    shifted = np.concatenate([[0.0], load[:-1]])
    return lfilter([decay], [1.0, -decay], shifted)


def banister_performance(
    load: ArrayLike,
    p0: float,
    k1: float,
    k2: float,
    tau1: float,
    tau2: float,
) -> pd.Series:
    """Modelled performance per day from daily training load.

    ``p(t) = p0 + k1 * sum_{s<t} w(s) e^{-(t-s)/tau1} - k2 * sum_{s<t} w(s) e^{-(t-s)/tau2}``:
    each day's load w adds a slow-decaying fitness (gain k1, time constant tau1 days) and a
    fast-decaying fatigue (k2, tau2). Banister EW, Calvert TW, Savage MV, Bach T. A systems model
    of training for athletic performance. Aust J Sports Med 1975;7:57-61; Busso T. Variable
    dose-response relationship between exercise training and performance. Med Sci Sports Exerc
    2003;35:1188-1195. Units of p0 are the performance measure's; k1, k2 are per unit load.
    """
    daily = as_daily(load)
    if daily.empty:
        raise ValueError("load is empty: banister_performance needs at least one day of load")
    for name, tau in (("tau1", tau1), ("tau2", tau2)):
        if not (tau > 0 and math.isfinite(tau)):
            raise ValueError(f"{name} must be a positive number of days, got {tau}")
    # The model's gains are fitness and fatigue per unit load: finite and not negative.
    if not math.isfinite(p0):
        raise ValueError(f"p0 must be finite, got {p0}")
    require_finite("k1", k1)
    require_finite("k2", k2)
    values = daily.to_numpy()
    fitness = _response(values, tau1)
    fatigue = _response(values, tau2)
    return pd.Series(p0 + k1 * fitness - k2 * fatigue, index=daily.index, name="performance")


@dataclass(frozen=True)
class BanisterFit:
    """Fitted impulse-response parameters and the fit's root-mean-square error."""

    p0: float
    k1: float
    k2: float
    tau1: float
    tau2: float
    rmse: float

    def predict(self, load: ArrayLike) -> pd.Series:
        """Modelled performance for a (possibly planned) daily load."""
        return banister_performance(load, self.p0, self.k1, self.k2, self.tau1, self.tau2)


def fit_banister(
    load: ArrayLike,
    performances: pd.Series,
    tau1_range: tuple[float, float] = (10.0, 80.0),
    tau2_range: tuple[float, float] = (1.0, 25.0),
) -> BanisterFit:
    """Fit p0, k1, k2, tau1, tau2 to measured performances by least squares.

    ``performances`` holds the measured values on the days they were measured; its index must
    be a subset of the daily index of ``load`` (dates or day numbers). With the time constants
    fixed the model is linear in p0, k1, k2, so a coarse grid over (tau1, tau2) with linear least
    squares finds a start near the global minimum, which scipy's bounded ``least_squares`` then
    refines (the raw 5-parameter problem has many poor local minima; Hellard P et al. Assessing
    the limitations of the Banister model in monitoring training. J Sports Sci 2006;24:509-520).
    """
    daily = as_daily(load)
    if daily.empty:
        raise ValueError("load is empty: fit_banister needs the daily load before the tests")
    measured = performances.dropna().astype("float64")
    positions = daily.index.get_indexer(measured.index)
    if (positions < 0).any():
        raise ValueError("every performance date must be inside the load's daily index")
    if len(measured) < 6:
        raise ValueError("need at least 6 performance measurements to fit 5 parameters")
    values = daily.to_numpy()
    target = measured.to_numpy()

    def design(tau1: float, tau2: float) -> np.ndarray:
        fitness = _response(values, tau1)[positions]
        fatigue = _response(values, tau2)[positions]
        return np.column_stack([np.ones_like(fitness), fitness, -fatigue])

    best: tuple[float, np.ndarray] | None = None
    for tau1 in np.geomspace(*tau1_range, 12):
        for tau2 in np.geomspace(*tau2_range, 10):
            if tau2 >= tau1:
                continue
            coef, *_ = np.linalg.lstsq(design(tau1, tau2), target, rcond=None)
            coef = np.array([coef[0], max(coef[1], 0.0), max(coef[2], 0.0)])
            sse = float(np.sum((design(tau1, tau2) @ coef - target) ** 2))
            if best is None or sse < best[0]:
                best = (sse, np.array([*coef, tau1, tau2]))
    assert best is not None

    def residuals(params: np.ndarray) -> np.ndarray:
        p0, k1, k2, tau1, tau2 = params
        return design(tau1, tau2) @ np.array([p0, k1, k2]) - target

    lower = [-np.inf, 0.0, 0.0, tau1_range[0], tau2_range[0]]
    upper = [np.inf, np.inf, np.inf, tau1_range[1], tau2_range[1]]
    start = np.clip(best[1], lower, upper)
    result = least_squares(residuals, start, bounds=(lower, upper), x_scale="jac")
    p0, k1, k2, tau1, tau2 = (float(v) for v in result.x)
    rmse = float(np.sqrt(np.mean(result.fun**2)))
    return BanisterFit(p0, k1, k2, tau1, tau2, rmse)
