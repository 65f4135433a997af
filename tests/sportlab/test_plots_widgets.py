"""Charts return their Axes with the expected content; the dashboard builds without a browser."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sportlab import datasets, plots, widgets
from sportlab.metrics import (
    acwr,
    critical_power,
    hr_zones,
    hrv_readiness,
    pmc,
    time_in_zones,
    w_prime_balance,
)


@pytest.fixture(scope="module")
def season():
    return datasets.team_season(seed=0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_pmc_and_acwr_charts(season):
    daily = season.daily_load()["A01"]
    ax = plots.pmc_chart(pmc(daily))
    assert [line.get_label() for line in ax.get_lines()][:2] == [
        "CTL (fitness, chronic load)",
        "ATL (fatigue, acute load)",
    ]
    ax = plots.acwr_chart(acwr(daily, method="ewma"))
    band = [p for p in ax.patches if "heuristic" in p.get_label()]
    assert len(band) == 1
    assert band[0].get_label() == "0.8-1.3 (heuristic band)"
    assert ax.get_ylim()[0] <= 0.8 and ax.get_ylim()[1] >= 1.3


def test_mean_max_chart_is_log_scaled_and_overlays_cp():
    t = np.arange(1, 1801)
    power = pd.Series(250 + 20_000 / (t + 20), index=t)
    fit = critical_power(power, model="2p")
    ax = plots.mean_max_chart(power, cp_fit=fit)
    assert ax.get_xscale() == "log"
    assert any("CP 25" in line.get_label() for line in ax.get_lines())


def test_zone_w_balance_and_readiness_charts():
    hr = np.concatenate([np.full(600, 110.0), np.full(300, 175.0)])
    ax = plots.zone_distribution(time_in_zones(hr, hr_zones("hrmax", hr_max=200)))
    assert [round(b.get_height()) for b in ax.patches] == [10, 0, 0, 5, 0]
    power = pd.Series(np.r_[np.full(120, 400.0), np.full(300, 150.0)])
    balance = w_prime_balance(power, 250.0, 20_000.0)
    ax = plots.w_prime_balance_chart(balance, 20_000.0, power_w=power)
    assert ax.get_lines()[0].get_ydata().min() == pytest.approx(balance.min() / 1000)
    days = pd.date_range("2026-01-01", periods=40, freq="D")
    ready = hrv_readiness(pd.Series(4.0 + 0.05 * np.sin(np.arange(40)), index=days))
    assert plots.readiness_chart(ready).get_ylabel() == "ln rMSSD (ln ms)"


def test_dashboard_builds_and_follows_the_controls(season):
    board = widgets.dashboard(season.sessions)
    assert board.athlete.options[0] == "A01"
    assert board.figure.axes[0].get_title().startswith("A01: PMC")
    board.athlete.value = "A07"
    board.metric.value = "ACWR (EWMA)"
    assert board.figure.axes[0].get_title() == "A07: ACWR (EWMA) (load)"
    board.load_column.value = "trimp"
    board.metric.value = "Daily load"
    board.date_range.index = (10, 40)
    bars = board.figure.axes[0].patches
    assert len(bars) == 31
    start, end = board.date_range.value
    expected = season.daily_load("trimp")["A07"].loc[start:end].to_numpy()
    np.testing.assert_allclose([b.get_height() for b in bars], expected)


def test_dashboard_needs_the_columns():
    with pytest.raises(ValueError, match="columns"):
        widgets.dashboard(pd.DataFrame({"date": [], "athlete": []}))
