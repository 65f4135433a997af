"""Matplotlib charts for the common sports-science views. Each returns the Axes it drew on.

Pass ``ax=`` to draw into an existing figure (dashboards, subplots); otherwise a new pyplot
figure is created so that the chart shows up in a notebook cell.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from sportlab.metrics.power import CriticalPowerFit

ACWR_BAND = (0.8, 1.3)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (9, 4)) -> Axes:
    if ax is not None:
        return ax
    _, new_ax = plt.subplots(figsize=figsize, layout="constrained")
    return new_ax


def pmc_chart(pmc_frame: pd.DataFrame, ax: Axes | None = None, title: str = "") -> Axes:
    """Performance Management Chart from :func:`sportlab.metrics.pmc`: CTL and ATL as lines,
    TSB as a shaded area (positive = fresher, negative = carrying fatigue)."""
    ax = _axes(ax)
    x = pmc_frame.index
    ax.plot(x, pmc_frame["ctl"], color="tab:blue", lw=2, label="CTL (fitness, chronic load)")
    ax.plot(x, pmc_frame["atl"], color="tab:pink", lw=1.2, label="ATL (fatigue, acute load)")
    tsb = pmc_frame["tsb"].to_numpy()
    ax.fill_between(x, 0, tsb, where=tsb >= 0, color="gold", alpha=0.5, label="TSB (form) > 0")
    ax.fill_between(x, 0, tsb, where=tsb < 0, color="tab:gray", alpha=0.35, label="TSB (form) < 0")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("load per day (AU)")
    ax.set_title(title or "Performance management chart")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def acwr_chart(
    acwr_frame: pd.DataFrame,
    ax: Axes | None = None,
    band: tuple[float, float] = ACWR_BAND,
    title: str = "",
) -> Axes:
    """ACWR from :func:`sportlab.metrics.acwr` with the 0.8-1.3 band shaded.

    The band is labelled as a heuristic: it is not a validated injury threshold (Impellizzeri
    et al. 2020, 2021; see the ``acwr`` docstring).
    """
    ax = _axes(ax)
    ax.axhspan(*band, color="tab:green", alpha=0.15, label=f"{band[0]}-{band[1]} (heuristic band)")
    ax.plot(acwr_frame.index, acwr_frame["acwr"], color="tab:purple", lw=1.5, label="ACWR")
    ax.axhline(1.0, color="black", lw=0.5, ls=":")
    ax.set_ylabel("acute : chronic")
    ax.set_title(title or "Acute:chronic workload ratio (descriptive only)")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def zone_distribution(seconds_in_zone: pd.Series, ax: Axes | None = None, title: str = "") -> Axes:
    """Bar chart of minutes per zone, from :func:`sportlab.metrics.time_in_zones`."""
    ax = _axes(ax, (6, 3.5))
    minutes = seconds_in_zone / 60.0
    total = minutes.sum()
    bars = ax.bar([str(z) for z in minutes.index], minutes.to_numpy(), color="tab:orange")
    if total > 0:
        labels = [f"{100 * m / total:.0f} %" for m in minutes]
        ax.bar_label(bars, labels=labels, fontsize="small")
    ax.set_ylabel("minutes")
    ax.set_title(title or "Time in zones")
    return ax


def mean_max_chart(
    mean_max: pd.Series,
    cp_fit: CriticalPowerFit | None = None,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """Mean-maximal power curve on a log duration axis, with an optional CP model overlay."""
    ax = _axes(ax)
    ax.plot(mean_max.index, mean_max.to_numpy(), color="tab:red", lw=2, label="mean-maximal power")
    if cp_fit is not None:
        t = np.geomspace(max(1, mean_max.index.min()), mean_max.index.max(), 200)
        label = f"{cp_fit.model} model: CP {cp_fit.cp_w:.0f} W, W' {cp_fit.w_prime_j / 1000:.1f} kJ"
        ax.plot(t, cp_fit.predict(t), color="black", ls="--", lw=1, label=label)
        ax.axhline(cp_fit.cp_w, color="gray", lw=0.6, ls=":")
    ax.set_xscale("log")
    ticks = [t for t in (1, 5, 15, 60, 300, 1200, 3600, 7200) if t <= mean_max.index.max()]
    ax.set_xticks(ticks, [_duration_label(t) for t in ticks])
    ax.set_xlabel("duration")
    ax.set_ylabel("power (W)")
    ax.set_title(title or "Mean-maximal power")
    ax.legend(fontsize="small")
    return ax


def _duration_label(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def w_prime_balance_chart(
    balance_j: pd.Series,
    w_prime_j: float | None = None,
    power_w: pd.Series | None = None,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """W' balance (kJ) over the ride, with optional power (W) on a second axis."""
    ax = _axes(ax)
    x = _elapsed_minutes(balance_j.index)
    if power_w is not None:
        power_ax = ax.twinx()
        power_ax.plot(_elapsed_minutes(power_w.index), power_w.to_numpy(), color="0.75", lw=0.5)
        power_ax.set_ylabel("power (W)")
        ax.set_zorder(power_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
    ax.plot(x, balance_j.to_numpy() / 1000.0, color="tab:blue", lw=1.5, label="W' balance")
    if w_prime_j is not None:
        ax.axhline(w_prime_j / 1000.0, color="black", lw=0.6, ls=":", label="W' (full)")
    ax.axhline(0, color="tab:red", lw=0.6)
    ax.set_xlabel("elapsed (min)")
    ax.set_ylabel("W' balance (kJ)")
    ax.set_title(title or "W' balance")
    ax.legend(loc="lower left", fontsize="small")
    return ax


def _elapsed_minutes(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.DatetimeIndex):
        return (index - index[0]).total_seconds().to_numpy() / 60.0
    return np.arange(len(index)) / 60.0


def readiness_chart(readiness: pd.DataFrame, ax: Axes | None = None, title: str = "") -> Axes:
    """ln rMSSD, its rolling mean and the SWC band, from :func:`sportlab.metrics.hrv_readiness`."""
    ax = _axes(ax)
    x = readiness.index
    ax.fill_between(
        x,
        readiness["swc_low"],
        readiness["swc_high"],
        color="tab:green",
        alpha=0.2,
        label="baseline +/- SWC",
    )
    ax.plot(x, readiness["ln_rmssd"], color="0.6", marker=".", lw=0.5, label="ln rMSSD (daily)")
    ax.plot(x, readiness["rolling_mean"], color="tab:green", lw=2, label="7-day rolling mean")
    low = readiness["below_swc"]
    ax.scatter(
        x[low],
        readiness.loc[low, "rolling_mean"],
        color="tab:red",
        zorder=3,
        s=12,
        label="below band",
    )
    ax.set_ylabel("ln rMSSD (ln ms)")
    ax.set_title(title or "HRV readiness")
    ax.legend(loc="lower left", fontsize="small")
    return ax
